"""The one reader of ``claude_invocations.db`` (``sources/calls.py``), over real databases
as the orchestrator's invoker writes them: session health and spend read through it,
and a missing, locked or corrupt file is a clear degraded status, never a traceback."""

from __future__ import annotations

import sqlite3
import time
from contextlib import closing
from pathlib import Path

import pytest

from ohm_tui.engine.config import load_config
from ohm_tui.engine.sources import calls, invocations
from ohm_tui.engine.sources.sessions import InvocationsSource
from tests.invocations_db import InvocationsDB


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    d = tmp_path / "data"
    d.mkdir()
    return d


def test_both_uses_read_through_the_one_reader() -> None:
    # Cost (invocations.py) opens, names and classifies through calls.py: one copy.
    assert invocations.open_invocations is calls.open_ro
    assert invocations.InvocationsError is calls.InvocationsError
    assert invocations.INVOCATIONS_DB == calls.FILE and invocations.TABLE == calls.TABLE


def test_reader_yields_the_newest_and_the_open_calls(data_dir: Path) -> None:
    now = time.time()
    db = InvocationsDB(data_dir)
    db.call("architect", invoked=now - 60, completed=now - 50, cost_usd=0.25)
    db.call("architect", invoked=now - 40, completed=now - 30, status="error", error="529")
    db.call("code-developer", invoked=now - 10, completed=None)
    reader = calls.CallsReader(calls.path_in(data_dir))
    try:
        got = reader.recent()
    finally:
        reader.close()
    assert [(c.agent_type, c.status, c.failed) for c in got] == [
        ("architect", "success", False),
        ("architect", "error", True),
        ("code-developer", "running", False),
    ]
    assert got[0].cost_usd == pytest.approx(0.25)
    assert got[2].completed_at is None and got[2].invoked_at == pytest.approx(now - 10, abs=1)
    assert reader.problem is None


def test_a_missing_db_is_missing_and_never_created(data_dir: Path) -> None:
    reader = calls.CallsReader(calls.path_in(data_dir))
    with pytest.raises(calls.InvocationsError) as err:
        reader.recent()
    assert err.value.kind == "missing" and reader.problem is err.value
    assert not calls.path_in(data_dir).exists()  # mode=ro never creates it


def test_a_corrupt_db_is_named_corrupt(data_dir: Path) -> None:
    calls.path_in(data_dir).write_bytes(b"this is not sqlite at all\n" * 200)
    with pytest.raises(calls.InvocationsError) as err:
        calls.CallsReader(calls.path_in(data_dir)).recent()
    assert err.value.kind == "corrupt"
    assert "not a readable SQLite database" in str(err.value)


def test_a_locked_db_is_named_locked_then_read_again(data_dir: Path) -> None:
    now = time.time()
    db = InvocationsDB(data_dir)
    db.call("architect", invoked=now - 60, completed=now - 50)
    reader = calls.CallsReader(db.path)
    try:
        with closing(sqlite3.connect(db.path, isolation_level=None)) as writer:
            writer.execute("BEGIN EXCLUSIVE")  # the invoker mid-write, holding the lock
            writer.execute("UPDATE claude_invocations SET cost_usd = 1 WHERE invocation_id = 1")
            with pytest.raises(calls.InvocationsError) as err:
                reader.recent()
            assert err.value.kind == "locked" and reader.problem is err.value
            writer.execute("ROLLBACK")
        assert [c.agent_type for c in reader.recent()] == ["architect"]
        assert reader.problem is None
    finally:
        reader.close()


def test_the_session_source_reports_a_bad_db_as_its_error(data_dir: Path) -> None:
    calls.path_in(data_dir).write_bytes(b"garbage" * 1000)
    src = InvocationsSource(load_config(None, data_dir=data_dir))
    try:
        out = src.read(time.time())
    finally:
        src.close()
    assert out.error is not None
    assert "claude_invocations unreadable (not a readable SQLite database" in out.error
    assert src.calls == []
