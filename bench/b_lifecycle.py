"""Figure 4 (scale, era 2): a full check at 1,000 ``agent_lifecycle`` rows.

1,000 live agents (``sleep infinity``, started by the bench orchestrator) are
registered as the released orchestrator registers them: one ``spawned`` row
each, naive local times, in ``data/orchestrator.db`` next to 1,000 finished rows
of history and an ``orchestrator_state`` heartbeat. No ``agent_state.json``.
CPU time of ``monitor.check()`` after a warm-up check, with the table as it was
and right after the orchestrator inserted a row.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from bench.b_detect import monitor_config
from bench.common import Orchestrator, Procs, Section, stat_row
from ohm_tui.demo.lifecycle_db import LifecycleDB
from ohm_tui.engine.monitor import OrchestratorHealthMonitor
from ohm_tui.engine.system import procs as ohm_procs
from ohm_tui.engine.timeutil import iso_local_naive

AGENTS = 1000
HISTORY = 1000


def fill(db: LifecycleDB, pids: list[int]) -> None:
    conn = sqlite3.connect(db.path)
    try:
        with conn:
            now = time.time()
            for i in range(HISTORY):
                at = iso_local_naive(now - 86400 - i)
                conn.execute(
                    "INSERT INTO agent_lifecycle (pid, agent_type, task_id, spawned_at, "
                    "started_at, completed_at, status, exit_code, command) "
                    "VALUES (?,?,?,?,?,?,?,?,?)",
                    (100000 + i, "code_developer", f"impl-{i}", at, at, at, "completed", 0, "x"),
                )
            for i, pid in enumerate(pids):
                raw = ohm_procs.read_proc(pid)
                at = iso_local_naive(raw.start_time if raw else now)
                conn.execute(
                    "INSERT INTO agent_lifecycle (pid, agent_type, task_id, spawned_at, "
                    "started_at, status, command) VALUES (?,?,?,?,?,?,?)",
                    (pid, "worker", f"task-{i}", at, at, "spawned", "sleep infinity"),
                )
    finally:
        conn.close()
    db.heartbeat()


def run(work: Path, quick: bool) -> Section:
    sec = Section("lifecycle")
    procs = Procs()
    orch = Orchestrator(procs, work / "lifecycle-orch")
    data = work / "lifecycle"
    try:
        pids = orch.spawn_many(AGENTS, "worker", ["sleep", "infinity"])
        db = LifecycleDB(data)
        fill(db, pids)
        mon = OrchestratorHealthMonitor(monitor_config(data), name="bench-lifecycle")
        try:
            active = mon.check().active_agents
            steady, changed = [], []
            for _ in range(3 if quick else 7):
                t0 = time.process_time()
                mon.check()
                steady.append((time.process_time() - t0) * 1000)
            for i in range(3):
                db.register(999999 - i, "worker", f"new-{i}", "sleep infinity")
                t0 = time.process_time()
                mon.check()
                changed.append((time.process_time() - t0) * 1000)
        finally:
            mon.close()
        sec.rows.append(
            stat_row(
                "4 scale",
                f"full health check CPU, {AGENTS} agent_lifecycle rows ({active} live agents)",
                steady,
                "ms",
                100.0,
                note=f"era 2: agent_lifecycle + orchestrator_state, {HISTORY} finished rows too",
            )
        )
        sec.rows.append(
            stat_row(
                "4 scale",
                f"full health check CPU, {AGENTS} agent_lifecycle rows, a row just inserted",
                changed,
                "ms",
                100.0,
                note="the orchestrator registered a new spawn before the check",
            )
        )
    finally:
        orch.quit()
        procs.close()
    return sec
