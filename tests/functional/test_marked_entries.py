"""Entries the orchestrator already marked: an ``active_agents`` entry whose process
is gone is stale whatever its status (the design card's scenario 3: "completed
agents still in agent_state.json"). ``killed`` entries (``exit_code: -9``) were
stopped on purpose: moved too, never taken for a crash, never respawned.

Real-format ``agent_state.json`` (interop.md, era 1), real processes.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from ohm_tui import OrchestratorHealthMonitor
from tests.functional.test_scenarios import base_config, real_entry, write_state
from tests.helpers import wait_until


def dead_run() -> tuple[int, float]:
    """A real process that ran and is gone (reaped): its PID and start time."""
    started = time.time()
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid, started


def marked(pid: int, started: float, task: str, status: str, **extra: Any) -> dict[str, Any]:
    entry = real_entry(pid, "code_developer", task, [sys.executable, "-c", "pass"], started)
    entry["status"] = status
    entry.update(extra)
    return entry


def test_completed_and_killed_entries_are_moved_reported_never_respawned(
    tmp_path: Path,
) -> None:
    state = tmp_path / "data" / "orchestrator" / "agent_state.json"
    done_pid, done_started = dead_run()
    killed_pid, killed_started = dead_run()
    running_pid, running_started = dead_run()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        active = {
            str(done_pid): marked(done_pid, done_started, "impl-1", "completed"),
            str(killed_pid): marked(killed_pid, killed_started, "impl-2", "killed", exit_code=-9),
            str(running_pid): marked(running_pid, running_started, "impl-3", "running"),
            # Killed in place, its process not gone yet: left alone.
            str(live.pid): marked(live.pid, time.time(), "impl-4", "killed", exit_code=-9),
        }
        write_state(state, active)
        with OrchestratorHealthMonitor(base_config(tmp_path)) as mon:
            report = mon.check()
            (stale,) = [i for i in report.issues if i.details.get("kind") == "stale_entries"]
            assert {e["pid"] for e in stale.details["entries"]} == {
                done_pid,
                killed_pid,
                running_pid,
            }
            assert not [i for i in report.issues if i.type == "agent_crash"]
            mon.auto_fix_issues(report)
            mon.report_bugs_if_any(report)
            doc = json.loads(state.read_text())
            assert set(doc["active_agents"]) == {str(live.pid)}
            assert doc["active_agents"][str(live.pid)] == active[str(live.pid)]
            moved = {e["pid"]: e for e in doc["completed_agents"]}
            assert set(moved) == {done_pid, killed_pid, running_pid}
            assert moved[done_pid]["status"] == "completed"
            assert moved[killed_pid]["status"] == "killed"  # stopped on purpose, not failed
            assert moved[killed_pid]["exit_code"] == -9
            assert all(e["completed_at"] for e in moved.values())
            assert mon.crashes() == []
            assert not [e for e in mon.events() if e.kind in ("respawned", "crashed")]
            (bug,) = mon.bugs()
            assert bug.priority == "Low" and "Stale agent entries" in bug.title
            views = {a.pid: a for a in mon.snapshot().agents}
            assert views[live.pid].status == "running"
    finally:
        live.kill()
        live.wait()


def test_an_agent_killed_on_purpose_is_no_crash_when_it_dies(tmp_path: Path) -> None:
    """The orchestrator marks an entry ``killed`` in place, then kills it: ohm watched it
    alive, sees it die, and moves it, with no crash and no respawn."""
    state = tmp_path / "data" / "orchestrator" / "agent_state.json"
    agent = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    started = time.time()
    try:
        entry = marked(agent.pid, started, "impl-9", "running")
        write_state(state, {str(agent.pid): entry})
        with OrchestratorHealthMonitor(
            base_config(tmp_path, health_check_interval=60.0, heartbeat_interval=0.2)
        ) as mon:
            mon.start()
            wait_until(lambda: agent.pid in mon.watching(), timeout=15)
            write_state(state, {str(agent.pid): {**entry, "status": "killed", "exit_code": -9}})
            agent.kill()
            agent.wait()

            def moved() -> bool:
                doc = json.loads(state.read_text())
                return not doc["active_agents"] and bool(doc["completed_agents"])

            wait_until(moved, timeout=15, interval=0.05)
            mon.stop()
            (done,) = json.loads(state.read_text())["completed_agents"]
            assert done["status"] == "killed" and done["exit_code"] == -9
            assert mon.crashes() == []
            assert not [e for e in mon.events() if e.kind in ("respawned", "crashed")]
    finally:
        if agent.poll() is None:
            agent.kill()
            agent.wait()
