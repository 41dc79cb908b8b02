"""The team daemon's per-agent heartbeat files (``data/agent_status/<agent>_status.json``),
written by a real child process in the daemon's own format (naive local ISO times,
``TZ`` far from UTC): crashes are recorded and never respawned, stale heartbeats are
reported, stopped agents are neither."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.faults.kit import MonitorFactory, count, event_kinds

# The daemon's writer: for each spec, datetime.now() (naive local) minus an age.
TEAM_DAEMON = r"""
import json, os, sys
from datetime import datetime, timedelta
folder, specs = sys.argv[1], json.loads(sys.argv[2])
os.makedirs(folder, exist_ok=True)
for agent, (state, age, error) in specs.items():
    beat = datetime.now() - timedelta(seconds=age)
    doc = {"agent_type": agent, "state": state, "current_task": f"task-{agent}",
           "last_heartbeat": beat.isoformat(), "next_check": None, "health": {},
           "pid": os.getpid(), "metrics": {}, "error": error}
    if state == "stopped":
        doc["stopped_at"] = beat.isoformat()
    with open(os.path.join(folder, f"{agent}_status.json"), "w") as fh:
        json.dump(doc, fh)
"""

IMPORT_ERROR = (
    "ImportError: cannot import name 'SkillNames' from 'coffee_maker.autonomous.skill_loader'"
)


def _daemon_writes(data_dir: Path, specs: dict[str, tuple[str, float, str | None]]) -> None:
    subprocess.run(
        [sys.executable, "-c", TEAM_DAEMON, str(data_dir / "agent_status"), json.dumps(specs)],
        check=True,
        timeout=30,
    )


def test_team_daemon_heartbeat_files(ohm: MonitorFactory, data_dir: Path) -> None:
    _daemon_writes(
        data_dir,
        {
            "architect": ("working", 0, None),
            "code_developer": ("crashed", 5, IMPORT_ERROR),
            "project_manager": ("stopped", 3600, None),
            "assistant": ("working", 400, None),
            "code-reviewer": ("idle", 200, None),  # 14 h off if read as UTC
            "ux_designer": ("error", 10, None),  # error state without text: not a crash
        },
    )
    mon = ohm()
    for _ in range(2):  # the same crashed file on every check: one crash record
        report = mon.check()
        mon.auto_fix_issues(report)
    crashes = [i for i in report.issues if i.type == "agent_crash"]
    assert [(i.agent_type, i.task_id) for i in crashes] == [
        ("code_developer", "task-code_developer")
    ]
    assert crashes[0].error.startswith("ImportError: cannot import name 'SkillNames'")
    stale = [i for i in report.issues if i.type == "heartbeat_stale"]
    assert [i.agent_type for i in stale] == ["assistant"]
    assert 395 <= stale[0].details["heartbeat_age"] <= 460
    (row,) = mon.crashes()
    assert (row.agent_type, row.error_type, row.source) == (
        "code_developer",
        "ImportError",
        "agent_status",
    )
    assert row.fix_state == "skipped" and not row.respawned
    assert "team daemon" in (row.action_taken or "")
    assert count(mon.config.database_path, "SELECT COUNT(*) FROM agent_crashes") == 1
    kinds = event_kinds(mon.config.database_path)
    assert kinds.count("crashed") == 1 and "respawned" not in kinds
    assert report.status == "degraded"
