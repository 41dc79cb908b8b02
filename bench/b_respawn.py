"""Figures 1-3 for ohm's own children, and the floor: a 0.2 s crasher under
``monitor.start()`` with ``respawn_backoff_base = 0``.

Each chain is one task: ohm starts the crasher (``spawn_agent``), it crashes
0.2 s later, ohm records and respawns it, three times, then gives up. From one
run come three figures:

- detection: the agent's own death time -> the "crashed" event (the listener
  runs right after the crash row's commit);
- respawn: the agent's death time -> the next run's own start time;
- retry limit: starts - 1 per chain, and exactly one ``gave_up`` event.

The floor is the same crasher under a bare ``Popen().wait()`` loop.
"""

from __future__ import annotations

import statistics
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from bench.common import Row, Section, crasher_argv, read_record, respawn_gaps, stat_row
from ohm_tui.engine.model import Event
from ohm_tui.engine.monitor import OrchestratorHealthMonitor
from ohm_tui.engine.system.spawner import Spawner, SpawnResult

MAX_RESPAWNS = 3


def monitor_config(data_dir: Path, **extra: object) -> dict[str, object]:
    cfg: dict[str, object] = {
        "data_dir": str(data_dir),
        "respawn_backoff_base": 0.0,
        "max_respawn_attempts": MAX_RESPAWNS,
        "orchestrator_match": ["no-orchestrator-in-this-bench"],
    }
    cfg.update(extra)
    return cfg


class EventLog:
    """Listener that stamps each event with the wall time it reached us."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.items: list[tuple[float, Event]] = []

    def __call__(self, ev: Event) -> None:
        t = time.time()
        with self.lock:
            self.items.append((t, ev))

    def of(self, kind: str) -> list[tuple[float, Event]]:
        with self.lock:
            return [(t, e) for t, e in self.items if e.kind == kind]


class SpawnTimes:
    """Wraps a monitor's ``Spawner.spawn`` to note, per agent pid, when ohm called it
    and when the runner had started the agent: a respawn's time split into ohm's
    decision, the hand-over to the runner, and the agent's own start-up."""

    def __init__(self, target: Spawner) -> None:
        self.by_pid: dict[int, tuple[float, float]] = {}  # pid -> (called, runner spawned)
        self._target = target

    def __enter__(self) -> SpawnTimes:
        original = self._target.spawn

        def timed(*args: Any, **kwargs: Any) -> SpawnResult:
            called = time.time()
            res = original(*args, **kwargs)
            self.by_pid[res.pid] = (called, res.started_at)
            return res

        self._target.spawn = timed  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: object) -> None:
        del self._target.spawn  # the class's method again

    def split(self, events: list[tuple[str, float, int]]) -> list[tuple[float, float, float]]:
        """Per respawn: (death -> spawn called, -> runner started it, -> agent's first line) ms."""
        out = []
        death: float | None = None
        for kind, t, pid in events:
            if kind == "death":
                death = t
            elif death is not None and pid in self.by_pid:
                called, spawned = self.by_pid[pid]
                out.append(
                    ((called - death) * 1000, (spawned - called) * 1000, (t - spawned) * 1000)
                )
                death = None
        return out


def run_ohm_chains(
    work: Path, chains: int
) -> tuple[list[float], list[float], list[int], list[int], list[tuple[float, float, float]]]:
    """(detection ms, respawn ms, respawns per chain, gave_up events per chain, respawn split)."""
    mon = OrchestratorHealthMonitor(monitor_config(work / "ohm-chains"), name="bench")
    log = EventLog()
    mon.add_listener(log)
    spawns = SpawnTimes(mon.spawner).__enter__()
    mon.start()
    detect_ms: list[float] = []
    respawn_ms: list[float] = []
    counts: list[int] = []
    gave_ups: list[int] = []
    splits: list[tuple[float, float, float]] = []
    try:
        for i in range(chains):
            task = f"chain-{i}"
            record = work / f"ohm-chain-{i}.txt"
            mon.spawn_agent(crasher_argv(record, "0.2"), agent_type="crasher", task_id=task)
            deadline = time.monotonic() + 15
            while not any(e.task_id == task for _, e in log.of("gave_up")):
                if time.monotonic() > deadline:
                    break
                time.sleep(0.005)
            time.sleep(0.3)  # a respawn after giving up would show here (it must not happen)
            events = read_record(record)
            deaths = {pid: t for kind, t, pid in events if kind == "death"}
            for t, ev in log.of("crashed"):
                if ev.task_id == task and ev.agent_pid in deaths:
                    detect_ms.append((t - deaths[ev.agent_pid]) * 1000)
            respawn_ms.extend(g * 1000 for g in respawn_gaps(events))
            splits.extend(spawns.split(events))
            counts.append(sum(1 for kind, _, _ in events if kind == "start") - 1)
            gave_ups.append(sum(1 for _, e in log.of("gave_up") if e.task_id == task))
    finally:
        mon.close()
        spawns.__exit__()
    return detect_ms, respawn_ms, counts, gave_ups, splits


def run_floor(work: Path, runs: int) -> list[float]:
    """A bare supervisor: ``Popen(argv).wait()`` in a loop, nothing else."""
    record = work / "floor.txt"
    argv = crasher_argv(record, "0.2")
    for _ in range(runs):
        subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).wait()
    return [g * 1000 for g in respawn_gaps(read_record(record))]


def run(work: Path, quick: bool) -> Section:
    sec = Section("respawn")
    chains = 3 if quick else 6
    detect_ms, respawn_ms, counts, gave_ups, splits = run_ohm_chains(work, chains)
    floor_ms = run_floor(work, 8 if quick else 16)
    sec.rows.append(
        stat_row(
            "1 detection",
            "ohm's child (spawn_agent): crash -> crash recorded",
            detect_ms,
            "ms",
            5.0,
            note="pidfd event; death time written by the agent itself",
        )
    )
    ratio = ""
    if floor_ms and respawn_ms:
        ratio = f"; {statistics.median(respawn_ms) / statistics.median(floor_ms):.1f}x the floor"
    split = ""
    if splits:
        parts = [statistics.median(x[i] for x in splits) for i in range(3)]
        split = (
            f"; median split: ohm decides {parts[0]:.1f} ms, runner starts it "
            f"{parts[1]:.1f} ms, agent's Python start-up {parts[2]:.1f} ms"
        )
    sec.rows.append(
        stat_row(
            "2 respawn",
            "ohm, backoff 0: crash -> respawned agent running",
            respawn_ms,
            "ms",
            30.0,
            note=f"to the new agent's first line{ratio}{split}",
        )
    )
    sec.rows.append(
        stat_row(
            "2 respawn",
            "floor: bare Popen() + wait() loop",
            floor_ms,
            "ms",
            None,
            note="same agent, to its first line; its Python start-up included",
        )
    )
    exact = all(c == MAX_RESPAWNS for c in counts) and all(g == 1 for g in gave_ups)
    sec.rows.append(
        Row(
            "3 retry limit",
            f"ohm, max_respawn_attempts={MAX_RESPAWNS}: respawns per trial, then given up",
            "/".join(str(c) for c in counts),
            "-",
            str(len(counts)),
            f"exactly {MAX_RESPAWNS}, then gave up, every trial",
            "met" if exact else "NOT met",
            f"gave_up events per trial: {'/'.join(str(g) for g in gave_ups)}",
        )
    )
    return sec
