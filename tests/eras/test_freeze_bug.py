"""The frozen-loop bug names the heartbeat ohm judged it by. In era 2 and 3 that is
the newest ``orchestrator_state.updated_at`` in ``orchestrator.db``: no
``work_loop_state.json`` exists there, and a bug telling the fixer to watch it
sends them to a file that is not written."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ohm_tui.demo.lifecycle_db import LifecycleDB
from ohm_tui.engine import timeutil

SESSION = ("architect", "spec-4", "claude --agent architect (session)")
PROCESS = ("architect", "spec-4", "poetry run architect create-spec --priority=4")


@pytest.mark.parametrize(("pid", "row"), [(2**40 + 2, SESSION), (4_000_000, PROCESS)])
def test_frozen_loop_bug_names_the_orchestrator_state_heartbeat(
    data_dir: Path, monitor: Any, pid: int, row: tuple[str, str, str]
) -> None:
    db = LifecycleDB(data_dir)
    db.heartbeat()
    db.register(pid, *row, status="running")
    db.set_heartbeat_time(timeutil.iso_local_naive(timeutil.now() - 89 * 60))
    mon = monitor(auto_fix=False)
    report = mon.check()
    assert report.status == "critical"
    assert mon.report_bugs_if_any(report)
    (bug,) = [b for b in mon.bugs() if b.title == "Orchestrator loop frozen"]
    assert not (data_dir / "orchestrator" / "work_loop_state.json").exists()
    text = " ".join([bug.description, bug.fingerprint or "", *bug.reproduction_steps])
    assert "work_loop_state" not in text, text
    assert bug.fingerprint == f"orchestrator_freeze:{data_dir / 'orchestrator.db'}"
    assert bug.reproduction_steps[-1] == (
        "Watch the newest orchestrator_state.updated_at in orchestrator.db stop advancing"
    )
