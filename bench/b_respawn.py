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

import subprocess
import threading
import time
from pathlib import Path

from bench.common import PYTHON, Row, Section, crasher_argv, read_record, respawn_gaps, stat_row
from ohm_tui.engine.models import Event
from ohm_tui.engine.monitor import OrchestratorHealthMonitor

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


def run_ohm_chains(work: Path, chains: int) -> tuple[list[float], list[float], list[int], list[int]]:
    """(detection ms, respawn ms, respawns per chain, gave_up events per chain)."""
    mon = OrchestratorHealthMonitor(monitor_config(work / "ohm-chains"), name="bench")
    log = EventLog()
    mon.add_listener(log)
    mon.start()
    detect_ms: list[float] = []
    respawn_ms: list[float] = []
    counts: list[int] = []
    gave_ups: list[int] = []
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
            counts.append(sum(1 for kind, _, _ in events if kind == "start") - 1)
            gave_ups.append(sum(1 for _, e in log.of("gave_up") if e.task_id == task))
    finally:
        mon.close()
    return detect_ms, respawn_ms, counts, gave_ups


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
    detect_ms, respawn_ms, counts, gave_ups = run_ohm_chains(work, chains)
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
    floor_med = sorted(floor_ms)[len(floor_ms) // 2] if floor_ms else 0.0
    sec.rows.append(
        stat_row(
            "2 respawn",
            "ohm, backoff 0: crash -> respawned agent running",
            respawn_ms,
            "ms",
            30.0,
            note=f"{len(respawn_ms) / max(1, len(counts)):.0f} respawns per chain; "
            f"{(sorted(respawn_ms)[len(respawn_ms) // 2] / floor_med if floor_med and respawn_ms else 0):.1f}x the floor",
        )
    )
    sec.rows.append(
        stat_row(
            "2 respawn",
            "floor: bare Popen() + wait() loop",
            floor_ms,
            "ms",
            None,
            note=f"same agent; Python start-up of the agent included ({PYTHON})",
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
