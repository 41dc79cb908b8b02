"""Figure 1 for agents the orchestrator started: they are not ohm's children.

The stand-in orchestrator starts a crasher that waits for SIGUSR1 and lists it in
``agent_state.json``. Once the running monitor watches it (``monitor.start()``,
a health check picked it up and armed its pidfd), the bench tells it to crash; it
writes a traceback to its log and its own death time, then exits. The figure is
that death time -> the "crashed" event (emitted right after the crash row commits).
"""

from __future__ import annotations

import signal
from functools import partial
from pathlib import Path

from bench.b_respawn import EventLog
from bench.common import (
    Orchestrator,
    Procs,
    Section,
    crasher_argv,
    read_record,
    signal_pid,
    stat_row,
    wait_until,
)
from ohm_tui.engine.monitor import OrchestratorHealthMonitor


def watching(mon: OrchestratorHealthMonitor) -> set[int]:
    """PIDs the monitor's pidfd watcher holds (the bench peeks; no public API needs this)."""
    w = mon._watcher
    return w.watching() if w is not None else set()


def _watched(mon: OrchestratorHealthMonitor, pid: int) -> bool:
    return pid in watching(mon)


def _crashed(log: EventLog, pid: int) -> bool:
    return any(e.agent_pid == pid for _, e in log.of("crashed"))


def orch_detection(
    mon: OrchestratorHealthMonitor, log: EventLog, orch: Orchestrator, work: Path, n: int, tag: str
) -> list[float]:
    """``n`` crashes of orchestrator-started agents, one at a time; detection in ms each."""
    out: list[float] = []
    for i in range(n):
        record = work / f"{tag}-{i}.txt"
        pid = orch.spawn("worker", f"{tag}-{i}", crasher_argv(record, "signal"))
        wait_until(partial(read_record, record), 10, f"agent {pid} ready")
        mon.wake()  # what the periodic check would do within health_check_interval
        wait_until(partial(_watched, mon, pid), 15, f"monitor watching pid {pid}")
        signal_pid(pid, signal.SIGUSR1)
        wait_until(partial(_crashed, log, pid), 10, f"crash of pid {pid} recorded")
        death = next(t for k, t, p in read_record(record) if k == "death")
        seen = next(t for t, e in log.of("crashed") if e.agent_pid == pid)
        out.append((seen - death) * 1000)
    return out


def monitor_config(data_dir: Path) -> dict[str, object]:
    return {
        "data_dir": str(data_dir),
        "auto_fix": False,  # detection only: nothing to respawn in this figure
        "orchestrator_match": ["no-orchestrator-in-this-bench"],
    }


def run(work: Path, quick: bool) -> Section:
    sec = Section("detect")
    procs = Procs()
    data = work / "orch-detect"
    orch = Orchestrator(procs, data)
    mon = OrchestratorHealthMonitor(monitor_config(data), name="bench")
    log = EventLog()
    mon.add_listener(log)
    try:
        mon.start()
        samples = orch_detection(mon, log, orch, work, 10 if quick else 25, "orch")
    finally:
        mon.close()
        orch.quit()
        procs.close()
    sec.rows.append(
        stat_row(
            "1 detection",
            "orchestrator's agent (not ohm's child): crash -> crash recorded",
            samples,
            "ms",
            5.0,
            note="pidfd event; crash evidence: the traceback in its log",
        )
    )
    return sec
