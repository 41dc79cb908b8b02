"""A real crashing agent walks its whole lifecycle through the one move function:
running -> crashed -> running (respawn 1) -> crashed -> respawning (backoff) -> running
(respawn 2) -> crashed -> given up, each move told by its event, in order."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sqlite3
import sys
from contextlib import closing
from pathlib import Path

import pytest

from ohm_tui import OrchestratorHealthMonitor
from ohm_tui.engine.model import EventKind, FixState, Lifecycle
from ohm_tui.engine.store import Store
from tests.helpers import wait_until

# Prints, lives a moment (so it is seen running), then fails.
CRASHER = "import sys, time; print('worker up', flush=True); time.sleep(0.3); sys.exit(3)"


def test_a_crashing_agent_walks_running_crashed_respawning_running_given_up(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    mon = OrchestratorHealthMonitor(
        {
            "data_dir": str(tmp_path / "data"),
            "max_respawn_attempts": 2,
            "respawn_backoff_base": 1.0,  # the second respawn waits: RESPAWNING is seen
            "respawn_backoff_factor": 2.0,
            "health_check_interval": 0.2,
            "orchestrator_match": ["no-such-orchestrator-for-this-test"],
            "tickets_dir": "tickets",
        }
    )
    caplog.set_level(logging.DEBUG, logger="ohm.lifecycle")
    mon.start()
    try:
        first = mon.spawn_agent(
            [sys.executable, "-c", CRASHER], agent_type="worker", task_id="walk-1", cwd=tmp_path
        )
        wait_until(
            lambda: any(e.kind == EventKind.GAVE_UP for e in mon.events()),
            timeout=30,
            message="the task given up after two respawns",
        )
    finally:
        mon.stop()
        for ev in mon.events(limit=1000):
            if ev.kind == EventKind.RESPAWNED and ev.agent_pid:
                with contextlib.suppress(OSError):
                    os.kill(ev.agent_pid, 9)
        mon.close()

    events = sorted(
        (e for e in mon.events(limit=1000) if e.task_id == "walk-1"),
        key=lambda e: (e.ts, e.event_id),
    )
    assert [e.kind for e in events] == [
        "spawned",  # ohm started the first run (a run's birth, not a move)
        EventKind.CRASHED,
        EventKind.RESPAWNED,
        EventKind.CRASHED,
        EventKind.RESPAWNED,
        EventKind.CRASHED,
        EventKind.GAVE_UP,
    ]
    assert events[0].agent_pid == events[1].agent_pid == first.pid
    # Each crash is of the run the respawn before it started.
    assert events[3].agent_pid == events[2].agent_pid != events[5].agent_pid
    assert events[5].agent_pid == events[4].agent_pid

    # Every move went through the one function, moves without an event included.
    moves = [
        (Lifecycle(a), Lifecycle(b)) for a, b in re.findall(r": (\w+) -> (\w+)$", caplog.text, re.M)
    ]
    L = Lifecycle
    assert moves == [
        (L.RUNNING, L.CRASHED),
        (L.CRASHED, L.RUNNING),
        (L.RUNNING, L.CRASHED),
        (L.CRASHED, L.RESPAWNING),
        (L.RESPAWNING, L.RUNNING),
        (L.RUNNING, L.CRASHED),
        (L.CRASHED, L.GIVEN_UP),
    ]
    assert "refused" not in caplog.text


def test_fix_states_written_by_an_older_ohm_read_and_move_as_before(tmp_path: Path) -> None:
    """Rows an older ohm wrote (its bare words) are read, claimed and released through
    ``FixState``: the stored words did not change, so no migration."""
    path = tmp_path / "data" / "orchestrator.db"
    Store(path).close()
    with closing(sqlite3.connect(path)) as conn:
        for n, state in enumerate(("pending", "claimed", "done", "skipped"), 1):
            conn.execute(
                "INSERT INTO agent_crashes (agent_pid, agent_type, crashed_at, crashed_ts, "
                "agent_key, fix_state, fix_claimed_by, fix_claimed_ts) "
                "VALUES (?, 'worker', '2026-01-01T00:00:00', ?, ?, ?, ?, ?)",
                (n, 1000.0 + n, f"{n}@1000", state, "old:1:1" if state == "claimed" else None, 1.0),
            )
        conn.commit()
    with Store(path) as store:
        (pending,) = store.pending_crashes()
        assert pending.agent_key == "1@1000" and pending.fix_state == FixState.PENDING
        assert [c[0] for c in store.claimed_crashes()] == [2]
        assert store.release_stale_claims(100.0) == 1  # the old claimer's claim comes back
        assert sorted(c.agent_key for c in store.pending_crashes()) == ["1@1000", "2@1000"]
        assert store.claim_crash(pending.crash_id, "new:1:1")
        got = {c.agent_key: c.fix_state for c in store.list_crashes()}
    assert got == {
        "1@1000": FixState.CLAIMED,
        "2@1000": FixState.PENDING,
        "3@1000": FixState.DONE,
        "4@1000": FixState.SKIPPED,
    }
