"""A run that crashed and was closed by the orchestrator's cleanup between two of
ohm's checks (or while ohm was not running): the cleanup books it ``completed`` with
no exit code, so only its log tells. It is recorded once, shown, never respawned.

Real processes crash into real log files; ``agent_state.json`` is written in the
real era-1 format (naive local times, ``command`` one string, cleanup relabelling).
"""

from __future__ import annotations

import json
import subprocess
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from ohm_tui.engine.model import EventKind
from tests.faults.kit import CRASH_SCRIPT, MonitorFactory, count, q

CLEAN_SCRIPT = 'read _line; echo "working on the task"; echo "done"; exit 0'


def _local_iso(ts: float) -> str:
    return datetime.fromtimestamp(ts).isoformat()


def _run(data_dir: Path, name: str, script: str, *args: str) -> dict[str, Any]:
    """A real run of ``script`` to its end, output in ``logs/<name>-<pid>.log``, and its
    entry as the cleanup leaves it in ``completed_agents``."""
    logs = data_dir / "logs"
    logs.mkdir(exist_ok=True)
    started = time.time()
    proc = subprocess.Popen(
        ["/bin/sh", "-c", script, "agent", *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    out, _ = proc.communicate(b"go\n", timeout=30)
    (logs / f"{name}-{proc.pid}.log").write_bytes(out)
    return {
        "pid": proc.pid,
        "agent_type": "code_developer",
        "task_id": name,
        "command": f"poetry run code-developer --task={name}",
        "started_at": _local_iso(started),
        "status": "completed",
        "completed_at": _local_iso(time.time()),
    }


def _crashed_events(database: Path) -> int:
    return count(database, "SELECT COUNT(*) FROM ohm_events WHERE kind=?", (EventKind.CRASHED,))


def _write_state(data_dir: Path, completed: list[dict[str, Any]]) -> None:
    orch = data_dir / "orchestrator"
    orch.mkdir(parents=True, exist_ok=True)
    doc = {"active_agents": {}, "completed_agents": completed}
    (orch / "agent_state.json").write_text(json.dumps(doc, indent=2))


def test_a_crash_closed_before_ohm_saw_it_end_is_recorded_once_and_not_respawned(
    ohm: MonitorFactory, data_dir: Path
) -> None:
    crashed = _run(data_dir, "impl-7", CRASH_SCRIPT, "RuntimeError: upstream API returned 500")
    clean = _run(data_dir, "impl-8", CLEAN_SCRIPT)
    killed = _run(data_dir, "impl-9", CRASH_SCRIPT, "RuntimeError: killed mid-way")
    killed["exit_code"] = -9  # stopped on purpose, relabelled completed: never a crash
    old = _run(data_dir, "impl-6", CRASH_SCRIPT, "RuntimeError: yesterday's news")
    old["completed_at"] = _local_iso(time.time() - 2 * 86400)  # history, not news
    _write_state(data_dir, [old, crashed, clean, killed])

    mon = ohm()
    report = mon.check()
    mon.auto_fix_issues(report)
    mon.check()  # read again: judged once, recorded once

    (crash,) = mon.crashes()
    assert crash.task_id == "impl-7" and crash.agent_pid == crashed["pid"]
    assert crash.error_type == "RuntimeError"
    assert crash.error_message == "upstream API returned 500"
    assert crash.stack_trace and "worker.py" in crash.stack_trace
    assert crash.action_taken and crash.action_taken.startswith("not respawned")
    database = mon.config.database_path
    assert (
        count(database, "SELECT COUNT(*) FROM ohm_events WHERE kind=?", (EventKind.CRASHED,)) == 1
    )
    assert not q(database, "SELECT 1 FROM ohm_events WHERE kind='respawned'")
    # The orchestrator's file is the orchestrator's: nothing in it changed.
    doc = json.loads((data_dir / "orchestrator" / "agent_state.json").read_text())
    assert doc == {"active_agents": {}, "completed_agents": [old, crashed, clean, killed]}


def test_a_closed_crash_ohm_already_recorded_is_not_recorded_again(
    ohm: MonitorFactory, data_dir: Path
) -> None:
    """A second monitor (or ohm after a restart) reads the same closed entries: the
    crash row and its event stay one."""
    crashed = _run(data_dir, "impl-7", CRASH_SCRIPT, "RuntimeError: upstream API returned 500")
    _write_state(data_dir, [crashed])
    ohm().check()
    again = ohm()
    again.check()
    assert len(again.crashes()) == 1
    database = again.config.database_path
    assert (
        count(database, "SELECT COUNT(*) FROM ohm_events WHERE kind=?", (EventKind.CRASHED,)) == 1
    )
