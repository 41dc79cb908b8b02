"""Each status change is one ``status_changed`` event, however many monitors watch
one data dir: the change is judged against the status on record, in the database,
not against what each monitor last saw itself (the demo's console engine and an
``ohm watch`` both told "status critical" three seconds apart)."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime
from pathlib import Path

import psutil

from ohm_tui.engine.monitor import OrchestratorHealthMonitor
from tests.functional.test_cli import Watch, dead_pid, make_state_dir
from tests.helpers import wait_until


def _status_events(database: Path) -> list[str]:
    conn = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        rows = conn.execute(
            "SELECT message FROM ohm_events WHERE kind='status_changed' ORDER BY event_id"
        ).fetchall()
    finally:
        conn.close()
    return [str(r[0]) for r in rows]


def _add_dead_agent(data: Path, task: str) -> None:
    state = data / "orchestrator" / "agent_state.json"
    doc = json.loads(state.read_text())
    gone = dead_pid()
    doc["active_agents"][str(gone)] = {
        "pid": gone,
        "agent_type": "architect",
        "task_id": task,
        "command": "poetry run architect create-spec --priority=20",
        "started_at": datetime.fromtimestamp(psutil.boot_time() + 1).isoformat(),
        "status": "running",
    }
    state.write_text(json.dumps(doc))


def test_two_monitors_tell_one_status_change_once(tmp_path: Path) -> None:
    data = make_state_dir(tmp_path)
    cfg = {"data_dir": str(data), "auto_fix": False}
    with (
        OrchestratorHealthMonitor(dict(cfg), name="console") as a,
        OrchestratorHealthMonitor(dict(cfg), name="watch") as b,
    ):
        first = a.check().status
        assert b.check().status == first
        before = _status_events(data / "orchestrator.db")
        _add_dead_agent(data, "spec-8")  # a dead "running" entry: degraded
        a_status = a.check().status
        assert a_status != first
        assert b.check().status == a_status
        a.check()
        b.check()
        after = _status_events(data / "orchestrator.db")
    assert len(after) == len(before) + 1, after
    assert after[-1].startswith(f"status {a_status}")


def test_watch_started_while_degraded_says_so_first(tmp_path: Path) -> None:
    data = make_state_dir(tmp_path)
    _add_dead_agent(data, "spec-8")
    with OrchestratorHealthMonitor({"data_dir": str(data), "auto_fix": False}) as mon:
        assert mon.check().status == "degraded"  # on record: no status_changed to come
    watch = Watch(data, tmp_path, "--no-fix")
    try:
        wait_until(lambda: watch.has("ohm watch: status"), timeout=20)
    finally:
        watch.stop()
    lines = list(watch.lines)
    (line,) = [x for x in lines if "ohm watch: status" in x]
    assert line.strip() == "ohm watch: status degraded: 1 stale entry", lines
    assert not any("status_changed" in x for x in lines), lines
