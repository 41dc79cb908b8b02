"""Tables, indexes and the numbered migrations (``ohm_meta`` holds the version)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from ohm_tui.engine.timeutil import to_epoch

_HEALTH_CHECKS = """
CREATE TABLE IF NOT EXISTS health_checks (
    check_id INTEGER PRIMARY KEY AUTOINCREMENT,
    timestamp TEXT NOT NULL,
    status TEXT NOT NULL,
    active_agents INTEGER,
    crashed_agents INTEGER,
    zombie_processes INTEGER,
    orchestrator_responsive BOOLEAN,
    last_poll_age_seconds INTEGER,
    actions_taken TEXT,
    bugs_reported TEXT,
    ts REAL,
    issues_json TEXT,
    monitor TEXT
)"""

_AGENT_CRASHES = """
CREATE TABLE IF NOT EXISTS agent_crashes (
    crash_id INTEGER PRIMARY KEY AUTOINCREMENT,
    agent_pid INTEGER NOT NULL,
    agent_type TEXT NOT NULL,
    task_id TEXT,
    crashed_at TEXT NOT NULL,
    error_type TEXT,
    error_message TEXT,
    stack_trace TEXT,
    respawned BOOLEAN,
    bug_reported BOOLEAN,
    bug_number INTEGER,
    crashed_ts REAL NOT NULL,
    agent_key TEXT UNIQUE NOT NULL,
    exit_code INTEGER,
    root_cause TEXT,
    related_files TEXT,
    fingerprint TEXT,
    log_excerpt TEXT,
    log_file TEXT,
    command_text TEXT,
    cwd TEXT,
    source TEXT,
    action_taken TEXT,
    fix_state TEXT NOT NULL DEFAULT 'pending',
    fix_claimed_by TEXT,
    fix_claimed_ts REAL
)"""

# The real tracker's table, exactly as it creates it; created only when the database has none.
_BUGS = """
CREATE TABLE IF NOT EXISTS bugs (
    bug_id INTEGER PRIMARY KEY AUTOINCREMENT,
    bug_number INTEGER UNIQUE NOT NULL,
    title TEXT NOT NULL,
    description TEXT NOT NULL,
    priority TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'open',
    category TEXT,
    reporter TEXT NOT NULL,
    assigned_to TEXT DEFAULT 'code_developer',
    discovered_in_priority INTEGER,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    resolved_at TEXT,
    closed_at TEXT,
    reproduction_steps TEXT,
    expected_behavior TEXT,
    actual_behavior TEXT,
    root_cause TEXT,
    fix_description TEXT,
    related_files TEXT,
    related_commits TEXT,
    pr_url TEXT,
    roadmap_priority TEXT,
    time_to_resolve_ms INTEGER,
    time_to_close_ms INTEGER,
    ticket_file_path TEXT,
    test_file_path TEXT,
    test_name TEXT,
    metadata TEXT
)"""

_OHM_TABLES = [
    """CREATE TABLE IF NOT EXISTS ohm_events (
        event_id INTEGER PRIMARY KEY AUTOINCREMENT,
        ts REAL NOT NULL,
        kind TEXT NOT NULL,
        message TEXT NOT NULL,
        agent_key TEXT, agent_pid INTEGER, agent_type TEXT, task_id TEXT,
        crash_id INTEGER, bug_number INTEGER, data TEXT)""",
    """CREATE TABLE IF NOT EXISTS ohm_agents (
        agent_key TEXT PRIMARY KEY,
        pid INTEGER NOT NULL, create_time REAL, agent_type TEXT NOT NULL, task_id TEXT,
        argv TEXT NOT NULL, command_text TEXT, cwd TEXT, log_file TEXT, source_file TEXT,
        respawn_of TEXT, started_ts REAL NOT NULL, ended_ts REAL, exit_code INTEGER,
        status TEXT NOT NULL DEFAULT 'running')""",
    """CREATE TABLE IF NOT EXISTS ohm_respawn_state (
        task_key TEXT PRIMARY KEY,
        attempts INTEGER NOT NULL DEFAULT 0, last_attempt_ts REAL, next_allowed_ts REAL,
        given_up INTEGER NOT NULL DEFAULT 0, given_up_ts REAL, last_start_ts REAL,
        recent_fast_exits TEXT NOT NULL DEFAULT '[]')""",
    """CREATE TABLE IF NOT EXISTS ohm_respawns (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        ts REAL NOT NULL, task_key TEXT NOT NULL, crash_id INTEGER, old_key TEXT, new_key TEXT,
        ok INTEGER NOT NULL, message TEXT)""",
    """CREATE TABLE IF NOT EXISTS ohm_seen (
        agent_key TEXT PRIMARY KEY, first_seen_ts REAL NOT NULL, last_seen_ts REAL NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS ohm_bug_meta (
        bug_number INTEGER PRIMARY KEY,
        fingerprint TEXT, issue_type TEXT, occurrences INTEGER NOT NULL DEFAULT 1,
        first_seen_ts REAL, last_seen_ts REAL, created_ts REAL,
        error_logs TEXT, stack_trace TEXT)""",
    """CREATE TABLE IF NOT EXISTS ohm_lease (
        name TEXT PRIMARY KEY, holder TEXT NOT NULL, holder_pid INTEGER,
        holder_create_time REAL, acquired_ts REAL NOT NULL, expires_ts REAL NOT NULL)""",
]

_INDEXES = [
    "CREATE INDEX IF NOT EXISTS ix_health_checks_ts ON health_checks(ts)",
    "CREATE INDEX IF NOT EXISTS ix_agent_crashes_ts ON agent_crashes(crashed_ts)",
    "CREATE INDEX IF NOT EXISTS ix_agent_crashes_type_ts ON agent_crashes(agent_type, crashed_ts)",
    "CREATE INDEX IF NOT EXISTS ix_agent_crashes_task_ts ON agent_crashes(task_id, crashed_ts)",
    "CREATE INDEX IF NOT EXISTS ix_agent_crashes_fp ON agent_crashes(fingerprint)",
    "CREATE INDEX IF NOT EXISTS ix_agent_crashes_fix ON agent_crashes(fix_state)",
    "CREATE INDEX IF NOT EXISTS ix_ohm_events_ts ON ohm_events(ts)",
    "CREATE INDEX IF NOT EXISTS ix_ohm_respawns_ts ON ohm_respawns(ts)",
    "CREATE INDEX IF NOT EXISTS ix_ohm_seen_last ON ohm_seen(last_seen_ts)",
    "CREATE INDEX IF NOT EXISTS ix_ohm_bug_meta_fp ON ohm_bug_meta(fingerprint)",
    "CREATE INDEX IF NOT EXISTS ix_ohm_bug_meta_type ON ohm_bug_meta(issue_type, created_ts)",
]

# Columns ohm adds when a seed-era table already exists with the seed's columns only.
_HEALTH_EXTRA = {"ts": "REAL", "issues_json": "TEXT", "monitor": "TEXT"}
_CRASH_EXTRA = {
    "crashed_ts": "REAL NOT NULL DEFAULT 0",
    "agent_key": "TEXT",
    "exit_code": "INTEGER",
    "root_cause": "TEXT",
    "related_files": "TEXT",
    "fingerprint": "TEXT",
    "log_excerpt": "TEXT",
    "log_file": "TEXT",
    "command_text": "TEXT",
    "cwd": "TEXT",
    "source": "TEXT",
    "action_taken": "TEXT",
    "fix_state": "TEXT NOT NULL DEFAULT 'pending'",
    "fix_claimed_by": "TEXT",
    "fix_claimed_ts": "REAL",
}


def _columns(conn: sqlite3.Connection, table: str) -> list[str]:
    return [str(r[1]) for r in conn.execute(f"PRAGMA table_info({table})")]


def _migration_1(conn: sqlite3.Connection) -> None:
    """Initial schema; upgrades seed-shaped ``health_checks``/``agent_crashes`` in place."""
    existing = {
        str(r[0]) for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
    }
    conn.execute(_HEALTH_CHECKS)
    conn.execute(_AGENT_CRASHES)
    conn.execute(_BUGS)
    for sql in _OHM_TABLES:
        conn.execute(sql)
    if "health_checks" in existing:
        have = set(_columns(conn, "health_checks"))
        for name, decl in _HEALTH_EXTRA.items():
            if name not in have:
                conn.execute(f"ALTER TABLE health_checks ADD COLUMN {name} {decl}")
        old = conn.execute("SELECT check_id, timestamp FROM health_checks WHERE ts IS NULL")
        conn.executemany(
            "UPDATE health_checks SET ts=? WHERE check_id=?",
            [(to_epoch(ts) or 0.0, cid) for cid, ts in old.fetchall()],
        )
    if "agent_crashes" in existing:
        have = set(_columns(conn, "agent_crashes"))
        added = [n for n in _CRASH_EXTRA if n not in have]
        for name in added:
            conn.execute(f"ALTER TABLE agent_crashes ADD COLUMN {name} {_CRASH_EXTRA[name]}")
        if "agent_key" in added:
            # Crashes recorded before ohm are history: never "fix" them now.
            rows = conn.execute("SELECT crash_id, crashed_at FROM agent_crashes").fetchall()
            conn.executemany(
                "UPDATE agent_crashes SET agent_key=?, crashed_ts=?, fix_state='skipped' "
                "WHERE crash_id=?",
                [(f"legacy:{cid}", to_epoch(at) or 0.0, cid) for cid, at in rows],
            )
            conn.execute(
                "CREATE UNIQUE INDEX IF NOT EXISTS ux_agent_crashes_key ON agent_crashes(agent_key)"
            )
    for sql in _INDEXES:
        conn.execute(sql)


def _migration_2(conn: sqlite3.Connection) -> None:
    """``ohm_acks``: operators' acknowledgements of issues (who, when, until, and the
    issue as it was then, so that a worse or newer one is not silenced)."""
    conn.execute(
        """CREATE TABLE IF NOT EXISTS ohm_acks (
        ack_id INTEGER PRIMARY KEY AUTOINCREMENT,
        issue_id TEXT NOT NULL, issue_type TEXT NOT NULL,
        acked_by TEXT NOT NULL, acked_ts REAL NOT NULL, until_ts REAL,
        severity TEXT NOT NULL, count INTEGER NOT NULL, crash_id INTEGER,
        error TEXT NOT NULL DEFAULT '', missing_since_ts REAL,
        ended_ts REAL, end_reason TEXT)"""
    )
    conn.execute("CREATE INDEX IF NOT EXISTS ix_ohm_acks_open ON ohm_acks(ended_ts, issue_id)")


MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [_migration_1, _migration_2]
SCHEMA_VERSION = len(MIGRATIONS)
