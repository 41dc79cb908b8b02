"""The SQLite store on real files, with real competing processes where it matters."""

from __future__ import annotations

import dataclasses
import json
import os
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

import ohm_tui
from ohm_tui.engine.model import CrashInfo, HealthReport, Issue, task_key
from ohm_tui.engine.store import SCHEMA_VERSION, RespawnState, Store, StoreError
from ohm_tui.engine.store.crashes import NewCrash

PKG_ROOT = str(Path(ohm_tui.__file__).resolve().parent.parent)
NOW = 1_760_950_000.0  # a fixed "now" (2025-10-20) so windows are exact


def wait_until(pred: Callable[[], bool], timeout: float = 10.0, interval: float = 0.01) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(interval)


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = PKG_ROOT + os.pathsep + env.get("PYTHONPATH", "")
    return env


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[str]]]:
    """Processes a test starts; all are killed and reaped at the end."""
    started: list[subprocess.Popen[str]] = []
    yield started
    for p in started:
        if p.poll() is None:
            p.kill()
        p.wait(timeout=10)
        for f in (p.stdin, p.stdout, p.stderr):
            if f is not None:
                f.close()


def spawn(procs: list[subprocess.Popen[str]], code: str, *args: str) -> subprocess.Popen[str]:
    p = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=child_env(),
    )
    procs.append(p)
    return p


def crash(store: Store, key: str, ts: float, **kw: object) -> tuple[int, bool]:
    args: dict[str, object] = {
        "agent_key": key,
        "agent_pid": 1000,
        "agent_type": "architect",
        "task_id": "spec-20",
        "crashed_at": ts,
        "exit_code": 1,
        "info": CrashInfo(
            error_type="ImportError",
            error_message="cannot import name 'SkillNames'",
            stack_trace="Traceback (most recent call last):\nImportError: x",
            related_files=["coffee_maker/skill_loader.py"],
            fingerprint="fp-1",
        ),
        "log_file": "/tmp/a.log",
        "command_text": "poetry run architect",
        "cwd": "/tmp",
        "source": "real",
    }
    args.update(kw)
    return store.record_crash(**args)  # type: ignore[arg-type]


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "data" / "orchestrator.db"


@pytest.fixture
def store(db: Path) -> Iterator[Store]:
    s = Store(db)
    yield s
    s.close()


def tables(path: Path) -> dict[str, str]:
    conn = sqlite3.connect(path)
    try:
        rows = conn.execute("SELECT name, sql FROM sqlite_master WHERE type='table'").fetchall()
    finally:
        conn.close()
    return {name: sql for name, sql in rows}


# ----------------------------------------------------------------- schema


def test_schema_created_in_wal_mode(store: Store, db: Path) -> None:
    names = set(tables(db))
    expected = {
        "ohm_meta",
        "health_checks",
        "agent_crashes",
        "bugs",
        "ohm_events",
        "ohm_agents",
        "ohm_respawn_state",
        "ohm_respawns",
        "ohm_seen",
        "ohm_bug_meta",
        "ohm_lease",
    }
    assert expected <= names
    assert store.schema_version == SCHEMA_VERSION
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()
    # Opening again is a no-op.
    Store(db).close()
    assert set(tables(db)) == names


REAL_SCHEMA = [
    """CREATE TABLE agent_lifecycle (
        agent_id INTEGER PRIMARY KEY AUTOINCREMENT, pid INTEGER NOT NULL,
        agent_type TEXT NOT NULL, task_id TEXT NOT NULL, task_type TEXT, priority_number INTEGER,
        spawned_at TEXT NOT NULL, started_at TEXT, completed_at TEXT, status TEXT NOT NULL,
        exit_code INTEGER, command TEXT NOT NULL, worktree_path TEXT, error_message TEXT,
        metadata TEXT, stdout_output TEXT, stderr_output TEXT)""",
    """CREATE TABLE orchestrator_state (
        key TEXT PRIMARY KEY, value TEXT NOT NULL, updated_at TEXT NOT NULL)""",
    """CREATE TABLE bugs (
        bug_id INTEGER PRIMARY KEY AUTOINCREMENT, bug_number INTEGER UNIQUE NOT NULL,
        title TEXT NOT NULL, description TEXT NOT NULL, priority TEXT NOT NULL,
        status TEXT NOT NULL DEFAULT 'open', category TEXT, reporter TEXT NOT NULL,
        assigned_to TEXT DEFAULT 'code_developer', discovered_in_priority INTEGER,
        created_at TEXT NOT NULL, updated_at TEXT NOT NULL, resolved_at TEXT, closed_at TEXT,
        reproduction_steps TEXT, expected_behavior TEXT, actual_behavior TEXT, root_cause TEXT,
        fix_description TEXT, related_files TEXT, related_commits TEXT, pr_url TEXT,
        ticket_file_path TEXT, metadata TEXT)""",
]


def test_real_orchestrator_tables_are_left_alone(db: Path) -> None:
    db.parent.mkdir(parents=True)
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA journal_mode=WAL")
    for sql in REAL_SCHEMA:
        conn.execute(sql)
    conn.execute(
        "INSERT INTO agent_lifecycle (pid, agent_type, task_id, spawned_at, status, command) "
        "VALUES (14993, 'architect', 'spec-20', '2025-10-19T19:43:20.588402', 'running', "
        "'poetry run architect create-spec --priority=20 --auto-approve')"
    )
    conn.execute(
        "INSERT INTO orchestrator_state VALUES ('last_poll', '1760950292.78', "
        "'2025-10-19T19:43:20')"
    )
    conn.execute(
        "INSERT INTO bugs (bug_number, title, description, priority, status, category, reporter, "
        "created_at, updated_at, reproduction_steps) VALUES (7, 'Spec loop hangs', 'It hangs', "
        "'High', 'in_progress', 'logic', 'assistant', '2025-10-19T19:43:20.588402', "
        "'2025-10-19T19:43:20.588402', '[\"start\", \"wait\"]')"
    )
    conn.commit()
    conn.close()
    before = tables(db)
    real = ("agent_lifecycle", "orchestrator_state", "bugs")

    with Store(db) as s:
        bugs = s.list_bugs()
        assert [b.bug_number for b in bugs] == [7]
        real_bug = bugs[0]
        assert real_bug.label == "BUG-007"
        assert real_bug.status == "in_progress"
        assert real_bug.occurrences == 1
        assert real_bug.fingerprint is None
        assert real_bug.reproduction_steps == ["start", "wait"]
        # Naive ISO from the real tracker is local time; it comes back as an epoch float.
        assert isinstance(real_bug.created_at, float)
        assert s.next_bug_number() == 8
        n = s.insert_bug(
            title="t",
            description="d",
            priority="Low",
            category="crash",
            assigned_to="code_developer",
            reproduction_steps=[],
            root_cause=None,
            related_files=[],
            metadata={},
            fingerprint="fp",
            issue_type="agent_crash",
            error_logs=None,
            stack_trace=None,
            now=NOW,
        )
        assert n == 8

    after = tables(db)
    for name in real:
        assert after[name] == before[name]
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT pid, status FROM agent_lifecycle").fetchall() == [
        (14993, "running")
    ]
    assert conn.execute("SELECT key FROM orchestrator_state").fetchall() == [("last_poll",)]
    assert conn.execute("SELECT bug_number FROM bugs ORDER BY bug_number").fetchall() == [
        (7,),
        (8,),
    ]
    conn.close()


def test_seed_shaped_tables_gain_ohm_columns(db: Path) -> None:
    """A database written by a seed-era monitor keeps its rows; old crashes are never "fixed"."""
    db.parent.mkdir(parents=True)
    conn = sqlite3.connect(db)
    conn.execute(
        "CREATE TABLE agent_crashes (crash_id INTEGER PRIMARY KEY AUTOINCREMENT, "
        "agent_pid INTEGER NOT NULL, agent_type TEXT NOT NULL, task_id TEXT, "
        "crashed_at TEXT NOT NULL, error_type TEXT, error_message TEXT, stack_trace TEXT, "
        "respawned BOOLEAN, bug_reported BOOLEAN, bug_number INTEGER)"
    )
    conn.execute(
        "INSERT INTO agent_crashes (agent_pid, agent_type, crashed_at, error_type) "
        "VALUES (2194, 'architect', '2025-10-20T10:00:00+00:00', 'ImportError')"
    )
    conn.commit()
    conn.close()
    with Store(db) as s:
        old = s.get_crash(1)
        assert old is not None
        assert old.agent_key == "legacy:1"
        assert old.crashed_at == 1760954400.0
        assert old.fix_state == "skipped"
        assert s.pending_crashes() == []
        crash_id, created = crash(s, "2194@1", NOW)
        assert created and crash_id == 2
        assert crash(s, "2194@1", NOW) == (2, False)


def test_newer_schema_is_refused(db: Path) -> None:
    Store(db).close()
    conn = sqlite3.connect(db)
    conn.execute("UPDATE ohm_meta SET value='999' WHERE key='schema_version'")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError) as err:
        Store(db)
    assert err.value.kind == "newer_schema"
    assert "newer" in str(err.value) and "999" in str(err.value)


def test_corrupt_file_gives_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "orchestrator.db"
    bad.write_bytes(b"this is not sqlite at all\x00\xff" * 200)
    with pytest.raises(StoreError) as err:
        Store(bad)
    assert err.value.kind == "corrupt"
    assert "corrupt" in str(err.value)


# ----------------------------------------------------------------- crashes


def test_record_crash_once_and_read_back(store: Store) -> None:
    first = crash(store, "1000@1760940000", NOW)
    again = crash(store, "1000@1760940000", NOW + 5)
    assert first[1] is True
    assert again == (first[0], False)
    rows = store.list_crashes()
    assert len(rows) == 1
    row = rows[0]
    assert row.agent_key == "1000@1760940000"
    assert row.crashed_at == NOW
    assert row.related_files == ["coffee_maker/skill_loader.py"]
    assert row.fix_state == "pending" and row.source == "real" and row.cwd == "/tmp"
    assert store.crash_by_key("1000@1760940000") == store.get_crash(first[0])
    summary = store.list_crashes(summary=True)[0]
    assert summary.stack_trace is None and summary.error_type == "ImportError"


def test_an_exit_code_learnt_later_fills_the_crash_row(store: Store) -> None:
    """A death event can beat the runner's exit record: the row gets the code later,
    once, and a known code is never overwritten."""
    first = crash(store, "1001@1760940000", NOW, exit_code=None)
    crash(store, "1001@1760940000", NOW, exit_code=-9)
    crash(store, "1001@1760940000", NOW, exit_code=1)
    row = store.get_crash(first[0])
    assert row is not None and row.exit_code == -9
    assert len(store.list_crashes()) == 1


def test_record_crashes_records_a_storm_in_one_call_each_once(store: Store) -> None:
    """A storm's crashes in one call (one transaction): ids in order, each run once,
    a run already on record (or twice in the batch) keeps its one row and id."""
    earlier, _ = crash(store, "1@1760940000", NOW)
    info = CrashInfo(error_type="RuntimeError", error_message="boom", fingerprint="fp-2")

    def new(key: str, code: int | None = 1) -> NewCrash:
        return NewCrash(
            agent_key=key,
            agent_pid=int(key.split("@")[0]),
            agent_type="code_developer",
            task_id="impl-1",
            crashed_at=NOW + 1,
            exit_code=code,
            info=info,
            log_file=None,
            command_text="sh -c x",
            cwd=None,
            source="real",
        )

    keys = [f"{n}@1760940000" for n in range(1, 41)]
    batch = [new(k) for k in keys] + [new("7@1760940000", code=None)]
    results = store.record_crashes(batch)
    assert len(results) == len(batch)
    assert results[0] == (earlier, False)
    created = [r for r in results[1:40] if r[1]]
    assert len(created) == 39 and len({i for i, _ in created}) == 39
    assert results[-1] == (results[6][0], False)  # the same run again: its row
    assert sorted(c.agent_key for c in store.list_crashes()) == sorted(keys)
    assert [store.get_crash(i).agent_key for i, _ in results[:40]] == keys  # type: ignore[union-attr]
    assert store.record_crashes([]) == []
    with pytest.raises(ValueError):  # refused before anything is written
        store.record_crashes([new("99@1"), dataclasses.replace(new("98@1"), fix_state="x")])
    assert store.crash_by_key("99@1") is None


def test_crash_groups_count_per_task_key_as_the_model_does(store: Store) -> None:
    """Per ``task_key``: a task's crashes, or a type's without a task; "Stopped" is no
    crash; flagged error types and crashes with no bug yet are told; newest task first."""
    a, _ = crash(store, "1@1", NOW, task_id="spec-20")
    b, _ = crash(store, "2@1", NOW + 1, task_id="spec-20", info=CrashInfo(error_type="OSError"))
    crash(store, "3@1", NOW + 5, task_id=None, agent_type="architect")
    crash(store, "4@1", NOW + 6, task_id="", agent_type="architect")
    crash(store, "5@1", NOW + 9, task_id="spec-21", info=CrashInfo(error_type="Stopped"))
    crash(store, "6@1", NOW - 100, task_id="spec-22")  # before the window
    store.set_crash_bug(a, 7)
    groups = store.crash_groups(NOW - 1, flagged=("ImportError",))
    assert [(g.task_key, g.count, g.flagged, g.unbugged) for g in groups] == [
        (task_key("architect", None), 2, True, 2),
        (task_key("architect", "spec-20"), 2, True, 1),
    ]
    assert not any(g.flagged for g in store.crash_groups(NOW - 1))
    assert store.task_crash_ids("task:spec-20", NOW - 1) == [(b, False), (a, True)]
    assert store.task_crash_ids("task:spec-21", NOW - 1) == []
    store.set_crash_bug(b, 7)  # every crash of spec-20 on a bug: nothing left to file
    assert [g.task_key for g in store.crash_groups(NOW - 1)] == [task_key("architect", None)]


def test_list_filters_and_counts(store: Store) -> None:
    crash(store, "a@1", NOW - 7200, agent_type="architect", task_id="spec-1")
    crash(store, "b@1", NOW - 60, agent_type="code_developer", task_id="impl-1")
    crash(store, "c@1", NOW - 30, agent_type="architect", task_id="spec-1")
    assert [c.agent_key for c in store.list_crashes(since=NOW - 3600)] == ["c@1", "b@1"]
    assert [c.agent_key for c in store.list_crashes(agent_type="architect")] == ["c@1", "a@1"]
    assert [c.agent_key for c in store.list_crashes(task_id="spec-1", limit=1)] == ["c@1"]
    assert store.count_crashes(NOW - 3600) == 2
    assert store.count_crashes(0, task_id="spec-1") == 2


def test_crash_histogram_buckets(store: Store) -> None:
    since = NOW - 300
    for i, offset in enumerate([-5, 10, 70, 75, 299, 3000]):
        crash(store, f"h{i}@1", since + offset)
    # 5 buckets of 60 s from since; later crashes land in the last bucket; earlier are out.
    assert store.crash_histogram(since=since, bucket_seconds=60, buckets=5) == [1, 2, 0, 0, 2]


def test_claim_finish_and_stale_release(store: Store) -> None:
    cid, _ = crash(store, "k@1", NOW)
    assert [c.crash_id for c in store.pending_crashes()] == [cid]
    assert store.claim_crash(cid, "m1", now=NOW) is True
    assert store.claim_crash(cid, "m2", now=NOW) is False
    assert store.pending_crashes() == []
    assert store.release_stale_claims(NOW - 10) == 0
    assert store.release_stale_claims(NOW + 10) == 1
    assert store.claim_crash(cid, "m2", now=NOW) is True
    store.finish_crash(cid, action_taken="respawned", respawned=True)
    store.set_crash_bug(cid, 3)
    row = store.get_crash(cid)
    assert row is not None
    assert (row.fix_state, row.action_taken, row.respawned) == ("done", "respawned", True)
    assert (row.bug_reported, row.bug_number) == (True, 3)


CLAIMER = """
import os, sys, time
from ohm_tui.engine.store import Store
db, go, name, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
s = Store(db)
print("ready", flush=True)
while not os.path.exists(go):
    time.sleep(0.001)
won = [cid for cid in range(1, n + 1) if s.claim_crash(cid, name)]
print(" ".join(map(str, won)), flush=True)
"""


def test_claim_race_between_processes(
    store: Store, db: Path, tmp_path: Path, procs: list[subprocess.Popen[str]]
) -> None:
    n = 60
    for i in range(n):
        crash(store, f"race{i}@1", NOW + i)
    go = tmp_path / "go"
    racers = [spawn(procs, CLAIMER, str(db), str(go), f"m{i}", str(n)) for i in range(2)]
    for p in racers:
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    go.touch()
    won: list[set[int]] = []
    for p in racers:
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
        won.append({int(x) for x in out.split()})
    assert won[0].isdisjoint(won[1])
    assert won[0] | won[1] == set(range(1, n + 1))
    claimed_by = {c.crash_id: c.fix_state for c in store.list_crashes()}
    assert set(claimed_by.values()) == {"claimed"}


# ----------------------------------------------------------------- concurrency


HOLD_LOCK = """
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
conn.execute("INSERT INTO ohm_events (ts, kind, message) VALUES (1760950000, 'other', 'held')")
print("locked", flush=True)
if sys.argv[2] == "stdin":
    sys.stdin.readline()
else:
    time.sleep(float(sys.argv[2]))
conn.execute("COMMIT")
print("released", flush=True)
"""


def test_write_waits_for_a_lock_held_by_another_process(
    db: Path, procs: list[subprocess.Popen[str]]
) -> None:
    s = Store(db, busy_timeout=0.2, lock_wait=15)  # short busy timeout: the retry loop waits
    holder = spawn(procs, HOLD_LOCK, str(db), "2")
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    started = time.monotonic()
    cid, created = crash(s, "late@1", NOW)
    waited = time.monotonic() - started
    print(f"write waited {waited:.2f}s for the other process's lock")
    assert created and waited > 0.5
    assert holder.wait(timeout=10) == 0
    assert s.get_crash(cid) is not None
    assert [e.message for e in s.list_events()] == ["held"]
    s.close()


def test_lock_held_too_long_raises_store_error(
    db: Path, procs: list[subprocess.Popen[str]]
) -> None:
    s = Store(db, busy_timeout=0.1, lock_wait=0.5)
    holder = spawn(procs, HOLD_LOCK, str(db), "stdin")
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    with pytest.raises(StoreError) as err:
        s.add_event("x", "y")
    assert err.value.kind == "locked"
    assert "locked" in str(err.value)
    assert holder.stdin is not None
    holder.stdin.write("go\n")
    holder.stdin.flush()
    assert holder.wait(timeout=10) == 0
    s.add_event("x", "after")  # the store works again once the lock is gone
    assert [e.message for e in s.list_events()] == ["after", "held"]
    s.close()


def test_threads_share_one_store(store: Store) -> None:
    def writer(t: int) -> None:
        for i in range(50):
            store.add_event("t", f"{t}-{i}")

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert len(store.list_events(limit=1000)) == 200


def test_nested_transaction_rolls_back_as_one(store: Store) -> None:
    with pytest.raises(RuntimeError), store.transaction():
        store.add_event("a", "one")
        with store.transaction():
            store.add_event("a", "two")
        raise RuntimeError("boom")
    assert store.list_events() == []


# ----------------------------------------------------------------- read-only and full


def test_read_only_store_reads_but_refuses_writes(db: Path) -> None:
    with Store(db) as s:
        crash(s, "ro@1", NOW)
    for ro in (Store(db, read_only=True), Store.open_readonly(db), Store(f"file:{db}?mode=ro")):
        with ro:
            assert ro.read_only
            assert [c.agent_key for c in ro.list_crashes()] == ["ro@1"]
            with pytest.raises(StoreError) as err:
                crash(ro, "ro@2", NOW)
            assert err.value.kind == "read_only"
            assert "read-only" in str(err.value)
    with pytest.raises(StoreError) as missing:
        Store.open_readonly(db.parent / "nope.db")
    assert missing.value.kind == "cannot_open"


def test_read_only_observer_of_a_foreign_database(tmp_path: Path) -> None:
    """A database ohm never set up: an observer sees no history instead of errors."""
    path = tmp_path / "orchestrator.db"
    conn = sqlite3.connect(path)
    conn.execute(REAL_SCHEMA[1])
    conn.commit()
    conn.close()
    with Store(path, read_only=True) as ro:
        assert ro.list_crashes() == []
        assert ro.list_events() == []
        assert ro.schema_version == 0
    assert "ohm_events" not in tables(path)


def test_sqlite_read_only_and_disk_full_errors(store: Store) -> None:
    with store.transaction() as conn:
        pass
    # SQLite itself refuses writes (query_only): a clear, immediate StoreError.
    conn.execute("PRAGMA query_only = ON")
    started = time.monotonic()
    with pytest.raises(StoreError) as err:
        store.add_event("x", "y")
    assert err.value.kind == "read_only" and "read-only" in str(err.value)
    assert time.monotonic() - started < 2
    conn.execute("PRAGMA query_only = OFF")
    # The database cannot grow: "disk full".
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count = {pages}")
    with pytest.raises(StoreError) as full:
        crash(store, "big@1", NOW, info=CrashInfo(stack_trace="x" * 200_000))
    assert full.value.kind == "disk_full" and "disk is full" in str(full.value)
    assert store.crash_by_key("big@1") is None


# ----------------------------------------------------------------- events, respawns, agents


def test_events_newest_first_and_after_id(store: Store) -> None:
    e1 = store.add_event("crashed", "a crashed", ts=NOW, agent_key="a@1", data={"x": 1})
    e2 = store.add_event("respawned", "a respawned", ts=NOW + 1, crash_id=4)
    assert [e.event_id for e in store.list_events()] == [e2.event_id, e1.event_id]
    assert [e.kind for e in store.list_events(after_id=e1.event_id)] == ["respawned"]
    assert [e.kind for e in store.list_events(since=NOW + 0.5)] == ["respawned"]
    assert store.event_data(e1.event_id) == {"x": 1}
    assert store.list_events()[1].agent_key == "a@1"


def test_respawn_state_and_rate(store: Store) -> None:
    fresh = store.get_respawn_state("task:spec-20")
    assert fresh == RespawnState("task:spec-20")
    fresh.attempts = 2
    fresh.next_allowed_ts = NOW + 10
    fresh.recent_fast_exits = [NOW - 1, NOW]
    store.save_respawn_state(fresh)
    assert store.get_respawn_state("task:spec-20") == fresh
    assert store.respawn_success_rate() is None
    for ok in (True, True, False, True):
        store.add_respawn(
            task_key="task:spec-20",
            crash_id=1,
            old_key="a@1",
            new_key="b@2",
            ok=ok,
            message="",
            ts=NOW,
        )
    assert store.respawn_success_rate() == 0.75
    assert store.respawn_success_rate(since=NOW + 1) is None


def test_ohm_agents_and_seen(store: Store) -> None:
    store.add_ohm_agent(
        agent_key="500@1",
        pid=500,
        create_time=NOW,
        agent_type="architect",
        task_id="spec-1",
        argv=["python", "-c", "pass"],
        command_text="python -c pass",
        cwd="/tmp",
        log_file="/tmp/500.log",
        started_ts=NOW,
        respawn_of="400@1",
    )
    agent = store.ohm_agent("500@1")
    assert agent is not None and agent["argv"] == ["python", "-c", "pass"]
    assert [a["agent_key"] for a in store.list_ohm_agents()] == ["500@1"]
    store.mark_ohm_agent_exited("500@1", exit_code=3, ended_ts=NOW + 1)
    assert store.list_ohm_agents() == []
    assert store.list_ohm_agents(running_only=False)[0]["exit_code"] == 3
    store.mark_seen([f"k{i}" for i in range(1200)], NOW)
    store.mark_seen(["k1"], NOW + 5)
    assert store.seen(["k1", "k1199", "nope"]) == {"k1", "k1199"}


def test_health_check_row(store: Store) -> None:
    report = HealthReport(
        status="degraded",
        issues=[Issue(type="zombie", severity="degraded", error="zombie 5", agent_pid=5)],
        active_agents=2,
        crashed_agents_last_hour=4,
        respawn_success_rate=0.5,
        orchestrator_last_poll=12.7,
        checked_at=NOW,
    )
    check_id = store.record_health_check(
        report,
        zombie_processes=1,
        orchestrator_responsive=True,
        actions=["cleaned"],
        bugs=[3],
        monitor="test",
    )
    [row] = store.list_health_checks()
    assert row["check_id"] == check_id and row["ts"] == NOW
    assert row["issues"][0]["type"] == "zombie"
    assert (row["actions_taken"], row["bugs_reported"]) == (["cleaned"], [3])
    conn = sqlite3.connect(store.path)
    stamp = conn.execute("SELECT timestamp FROM health_checks").fetchone()[0]
    conn.close()
    assert stamp.startswith("2025-10-20T") and stamp.endswith("+00:00")


# ----------------------------------------------------------------- lease


HOLD_LEASE = """
import sys, psutil
from ohm_tui.engine.store import Store
s = Store(sys.argv[1])
me = psutil.Process()
ok = s.acquire_lease("fixer", "child", ttl=3600, now=float(sys.argv[2]), holder_pid=me.pid,
                     holder_create_time=me.create_time(), is_alive=lambda p, c: True)
print("held" if ok else "refused", flush=True)
sys.stdin.readline()
"""


def is_alive(pid: int, create_time: float) -> bool:
    try:
        p = psutil.Process(pid)
        return abs(p.create_time() - create_time) < 1.0 and p.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def test_lease_held_by_live_process_then_taken_over(
    store: Store, db: Path, procs: list[subprocess.Popen[str]]
) -> None:
    me = psutil.Process()
    mine = {"holder_pid": me.pid, "holder_create_time": me.create_time(), "is_alive": is_alive}
    holder = spawn(procs, HOLD_LEASE, str(db), str(NOW))
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    assert not store.acquire_lease("fixer", "parent", ttl=90, now=NOW + 1, **mine)  # type: ignore[arg-type]
    info = store.lease_holder("fixer")
    assert info is not None and info["holder"] == "child" and info["holder_pid"] == holder.pid
    holder.kill()
    holder.wait(timeout=10)
    assert store.acquire_lease("fixer", "parent", ttl=90, now=NOW + 2, **mine)  # type: ignore[arg-type]
    info = store.lease_holder("fixer")
    assert info is not None and info["holder"] == "parent" and info["expires_ts"] == NOW + 92
    # Renewing our own lease keeps its start; an expired lease of a live holder can be taken.
    assert store.acquire_lease("fixer", "parent", ttl=90, now=NOW + 50, **mine)  # type: ignore[arg-type]
    info = store.lease_holder("fixer")
    assert info is not None and info["acquired_ts"] == NOW + 2
    other = {"holder_pid": me.pid + 1, "holder_create_time": 0.0, "is_alive": is_alive}
    assert not store.acquire_lease("fixer", "x", ttl=90, now=NOW + 60, **other)  # type: ignore[arg-type]
    assert store.acquire_lease("fixer", "x", ttl=90, now=NOW + 200, **other)  # type: ignore[arg-type]
    store.release_lease("fixer", "parent")  # not ours any more: no effect
    assert (store.lease_holder("fixer") or {}).get("holder") == "x"
    store.release_lease("fixer", "x")
    assert store.lease_holder("fixer") is None


# ----------------------------------------------------------------- bugs


def _bug(store: Store, fp: str | None, now: float, **kw: object) -> int:
    args: dict[str, object] = {
        "title": "Agent crashes",
        "description": "d",
        "priority": "High",
        "category": "crash",
        "assigned_to": "code_developer",
        "reproduction_steps": ["start"],
        "root_cause": "missing export",
        "related_files": ["a.py"],
        "metadata": {"k": 1},
        "fingerprint": fp,
        "issue_type": "agent_crash",
        "error_logs": "log",
        "stack_trace": "trace",
        "now": now,
    }
    args.update(kw)
    return store.insert_bug(**args)  # type: ignore[arg-type]


def test_bug_rows(store: Store) -> None:
    a = _bug(store, "fp-a", NOW)
    b = _bug(store, "fp-b", NOW + 1, priority="Critical", issue_type="zombie")
    assert (a, b) == (1, 2)
    assert store.open_bug_by_fingerprint("fp-a") == store.get_bug(a)
    assert store.last_bug_created_ts("agent_crash") == NOW
    assert store.last_bug_created_ts("nothing") is None
    assert [x.bug_number for x in store.list_bugs()] == [2, 1]  # Critical first
    store.touch_bug(a, last_seen=NOW + 10, priority="Critical")
    bug = store.get_bug(a)
    assert bug is not None and (bug.occurrences, bug.last_seen, bug.priority) == (
        2,
        NOW + 10,
        "Critical",
    )
    store.update_bug(a, status="closed", closed_at=NOW + 20, related_files=["b.py"])
    assert store.open_bug_by_fingerprint("fp-a") is None
    assert store.count_open_bugs() == 1
    assert [x.bug_number for x in store.list_bugs(status="closed")] == [a]
    assert [x.bug_number for x in store.list_bugs(status="all")] == [2, 1]
    closed = store.get_bug(a)
    assert closed is not None and closed.related_files == ["b.py"]
    with pytest.raises(KeyError, match="BUG-099"):
        store.update_bug(99, status="open")
    with pytest.raises(ValueError):
        store.update_bug(a, priority="Urgent")
    with pytest.raises(ValueError):
        store.list_bugs(status="nonsense")
    assert store.bug_metadata(a) == {"k": 1}


# ----------------------------------------------------------------- retention and speed


def test_prune_is_bounded_and_keeps_new_rows(store: Store) -> None:
    cutoff = NOW - 7 * 86400
    conn = store.db._connection()
    with store.transaction():
        conn.executemany(
            "INSERT INTO ohm_events (ts, kind, message) VALUES (?, 'old', 'x')",
            [(cutoff - 10 - i,) for i in range(2500)],
        )
    for i in range(20):
        store.add_event("new", "x", ts=NOW - i)
    crash(store, "old@1", cutoff - 1)
    crash(store, "new@1", NOW)
    store.mark_seen(["old"], cutoff - 1)
    store.mark_seen(["new"], NOW)
    bug = _bug(store, "fp", cutoff - 100)

    first = store.prune(older_than=cutoff, max_seconds=0.0, batch=1000)
    assert 0 < first <= 1000  # one batch, then the time budget is spent
    total = first
    for _ in range(20):
        n = store.prune(older_than=cutoff, max_seconds=0.0, batch=1000)
        if n == 0:
            break
        total += n
    assert total == 2500 + 1 + 1
    assert {e.kind for e in store.list_events(limit=5000)} == {"new"}
    assert len(store.list_events(limit=5000)) == 20
    assert [c.agent_key for c in store.list_crashes()] == ["new@1"]
    assert store.seen(["old", "new"]) == {"new"}
    assert store.get_bug(bug) is not None  # bugs are kept forever
    assert store.integrity_ok()


def test_list_crashes_last_24h_over_200k_rows(store: Store) -> None:
    span = 10 * 86400
    conn = store.db._connection()
    started = time.monotonic()
    with store.transaction():
        conn.execute(
            """
            WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 199999)
            INSERT INTO agent_crashes (agent_pid, agent_type, task_id, crashed_at, error_type,
                error_message, stack_trace, respawned, bug_reported, crashed_ts, agent_key,
                exit_code, related_files, fingerprint, log_excerpt, source, fix_state)
            SELECT 1000 + i % 30000, CASE i % 3 WHEN 0 THEN 'architect' WHEN 1 THEN
                'code_developer' ELSE 'project_manager' END, 'spec-' || (i % 50),
                '2025-10-20T00:00:00+00:00', 'ImportError', 'cannot import name X',
                'Traceback ... ' || i, 0, 0, ? - (i * ? / 200000.0), 'gen' || i, 1, '[]',
                'fp', 'tail', 'real', 'done'
            FROM n
            """,
            (NOW, span),
        )
    print(f"generated 200,000 crashes in {time.monotonic() - started:.2f}s")
    started = time.monotonic()
    rows = store.list_crashes(since=NOW - 86400, summary=True)
    elapsed = time.monotonic() - started
    print(f"list_crashes(--last=24h) -> {len(rows)} rows in {elapsed:.3f}s")
    assert len(rows) == store.count_crashes(NOW - 86400) == 20001  # both ends inclusive
    assert rows[0].crashed_at >= rows[-1].crashed_at >= NOW - 86400
    assert elapsed < 5.0
    started = time.monotonic()
    hist = store.crash_histogram(since=NOW - 86400, bucket_seconds=3600, buckets=24)
    print(f"crash_histogram(24 x 1h) in {time.monotonic() - started:.3f}s")
    assert sum(hist) == 20001


def test_schema_meta_row(db: Path, store: Store) -> None:
    conn = sqlite3.connect(db)
    meta = dict(conn.execute("SELECT key, value FROM ohm_meta").fetchall())
    conn.close()
    assert meta["schema_version"] == str(SCHEMA_VERSION)
    assert json.loads(meta["created_ts"]) > 0


# ----------------------------------------------------------------- the façade over its parts


def test_store_is_one_database_with_thin_repositories(store: Store) -> None:
    """Every repository is an object over the ONE database (no second connection), and
    the façade offers each repository method as that repository's own bound method."""
    from ohm_tui.engine.store.database import Database, Repository

    repos = [store.crashes, store.respawns, store.events, store.bugs]
    repos += [store.lease, store.acks, store.retention]
    assert not isinstance(store, Database)
    for repo in repos:
        assert isinstance(repo, Repository) and not isinstance(repo, Database)
        assert repo.db is store.db
        for name in dir(type(repo)):
            if name.startswith("_") or name in dir(Repository):
                continue
            if isinstance(getattr(type(repo), name), property):
                assert getattr(store, name) == getattr(repo, name), name
                continue
            forwarded = getattr(store, name, None)  # a method the façade forgot: None
            assert forwarded is not None, f"Store does not offer {type(repo).__name__}.{name}"
            assert forwarded.__self__ is repo and forwarded.__func__ is getattr(type(repo), name)


def test_one_transaction_spans_repositories(store: Store) -> None:
    """A respawn's ledger row, its state and its crash's finish are written together
    or not at all, though three repositories write them."""
    crash_id, _ = crash(store, "a@1", NOW)
    state = RespawnState("task:t-1", attempts=1)
    with pytest.raises(RuntimeError), store.transaction():
        store.save_respawn_state(state)
        store.add_respawn(
            task_key="task:t-1",
            crash_id=crash_id,
            old_key="a@1",
            new_key="b@2",
            ok=True,
            message="respawned 1/3",
            ts=NOW,
        )
        store.finish_crash(crash_id, action_taken="respawned", respawned=True)
        raise RuntimeError("killed between the rows")
    assert store.get_respawn_state("task:t-1") == RespawnState("task:t-1")
    assert store.respawn_success_rate() is None
    row = store.get_crash(crash_id)
    assert row is not None and row.fix_state == "pending"


def test_respawn_states_read_many_tasks_as_one_each_would(store: Store) -> None:
    """A snapshot reads every listed task's ledger row at once: the same states as one
    read per task, across the chunks a long IN list is cut into; unknown tasks absent."""
    keys = [f"task:t-{i}" for i in range(1200)]
    for i, key in enumerate(keys[::3]):
        store.save_respawn_state(
            RespawnState(
                key, attempts=i % 4, given_up=i % 5 == 0, next_allowed_ts=NOW + i, last_start_ts=NOW
            )
        )
    states = store.respawn_states([*keys, "task:never-ran"])
    assert set(states) == set(keys[::3])
    for key in keys:
        assert states.get(key, RespawnState(key)) == store.get_respawn_state(key)
