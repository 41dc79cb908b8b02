"""Fork-bomb prevention: a command that exits at once with code 0, forever, is
detected as flapping, and ohm does not keep it going (the real system respawned
such agents every 11 seconds, forever)."""

from __future__ import annotations

import functools
import json
import subprocess
import time
from typing import Any

from ohm_tui import OrchestratorHealthMonitor
from ohm_tui.engine import timeutil
from tests.faults.kit import MonitorFactory, Orchestrator, count, event_kinds, q
from tests.helpers import wait_until

EXIT_0 = ["/bin/sh", "-c", "exit 0"]
ROUNDS = 6
FLAP = {
    "flap_threshold": 3,
    "flap_min_runtime": 5.0,
    "flap_window": 600.0,
    "heartbeat_interval": 5.0,  # exit codes from exit records, never a "gone" timeout
}


def flapping(mon: OrchestratorHealthMonitor) -> list[str]:
    return [i.error for i in mon.check().issues if i.type == "flapping"]


def test_instant_clean_exit_through_ohm_is_flapping_and_never_respawned(
    ohm: MonitorFactory,
) -> None:
    """An embedded orchestrator starts the agent through ohm, again each time it ends."""
    mon = ohm(**FLAP)

    def ended(key: str) -> bool:
        mon.check()
        sql = "SELECT COUNT(*) FROM ohm_agents WHERE agent_key=? AND status!='running'"
        return count(mon.config.database_path, sql, (key,)) == 1

    for _ in range(ROUNDS):
        key = mon.spawn_agent(EXIT_0, agent_type="code_developer", task_id="impl-loop").key
        wait_until(functools.partial(ended, key), timeout=5, message="run ended")
    errors = flapping(mon)
    assert errors and "task:impl-loop" in errors[0], errors
    report = mon.check()
    mon.auto_fix_issues(report)
    mon.report_bugs_if_any(report)
    mon.report_bugs_if_any(mon.check())
    kinds = event_kinds(mon.config.database_path)
    assert "respawned" not in kinds  # a clean exit is never respawned by ohm
    assert count(mon.config.database_path, "SELECT COUNT(*) FROM ohm_agents") == ROUNDS
    flap_bugs = [b for b in mon.bugs() if "flapping" in b.title.lower()]
    assert len(flap_bugs) == 1 and flap_bugs[0].priority == "Medium"
    # A crash of the flapping task is not respawned either: it is given up.
    view = mon.spawn_agent(
        ["/bin/sh", "-c", "exit 3"], agent_type="code_developer", task_id="impl-loop"
    )
    wait_until(lambda: mon.check() and mon.crashes(), timeout=5, message="crash recorded")
    mon.auto_fix_issues()
    assert "respawned" not in event_kinds(mon.config.database_path)
    (crash,) = mon.crashes()
    assert crash.agent_key == view.key and crash.action_taken == "gave up"


def test_orchestrator_loop_of_instant_clean_exits_is_detected(
    orch: Orchestrator, ohm: MonitorFactory
) -> None:
    """The orchestrator itself restarts the agent each time it exits 0 and books the
    run into ``completed_agents``, as the real one did; ohm must call it a loop."""
    mon = ohm(**FLAP)
    doc: dict[str, Any] = {"active_agents": {}, "completed_agents": []}
    for i in range(ROUNDS):
        started = time.time()
        p = subprocess.Popen(EXIT_0)
        entry = {
            "pid": p.pid,
            "agent_type": "code_developer",
            "task_id": "impl-loop",
            "command": "sh -c 'exit 0'",
            "started_at": timeutil.iso_local_naive(started),
            "status": "running",
        }
        doc["active_agents"] = {str(p.pid): entry}
        orch.write(doc)
        mon.check()
        assert p.wait(timeout=5) == 0
        entry = dict(
            entry,
            status="completed",
            exit_code=0,
            completed_at=timeutil.iso_local_naive(time.time()),
        )
        doc["active_agents"] = {}
        doc["completed_agents"] = [*doc["completed_agents"], entry][-100:]
        orch.write(doc)
        mon.check()
        if i == 0:
            assert not flapping(mon)  # one quick run is not a loop
    errors = flapping(mon)
    assert errors and "task:impl-loop" in errors[0], errors
    report = mon.check()
    mon.auto_fix_issues(report)
    mon.report_bugs_if_any(report)
    assert "respawned" not in event_kinds(mon.config.database_path)
    assert count(mon.config.database_path, "SELECT COUNT(*) FROM ohm_agents") == 0
    assert len([b for b in mon.bugs() if "flapping" in b.title.lower()]) == 1
    # Counted once per run, however many checks saw the same completed entries.
    (fast,) = q(
        mon.config.database_path,
        "SELECT recent_fast_exits FROM ohm_respawn_state WHERE task_key='task:impl-loop'",
    )
    assert len(json.loads(fast[0])) == ROUNDS
