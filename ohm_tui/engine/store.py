"""ohm's history in SQLite (``data/orchestrator.db``), shared with the real orchestrator.

The database may already hold the real orchestrator's tables (``agent_lifecycle``,
``orchestrator_state``, ``bugs``). Opening it never drops or alters those: ohm's
tables are created with ``IF NOT EXISTS`` and the real tracker's ``bugs`` table is
only created when absent. ohm's own columns for a bug live in ``ohm_bug_meta``.

Several ohm processes (a console, a CLI, an embedded monitor) may write at once,
so every write runs under ``BEGIN IMMEDIATE`` and waits for a busy database up to
``lock_wait`` seconds before giving up with a ``StoreError`` that says why.
All times are UTC epoch floats; text time columns required by the seed's schema
are written as ISO UTC next to a REAL column that is what queries compare.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

from ohm_tui.engine.model import Ack, BugRow, CrashInfo, CrashRow, Event, HealthReport
from ohm_tui.engine.timeutil import iso_local_naive, iso_utc, to_epoch
from ohm_tui.engine.timeutil import now as _now

T = TypeVar("T")

OPEN_STATUSES: tuple[str, ...] = ("open", "analyzing", "in_progress", "testing")
BUG_STATUSES: tuple[str, ...] = (*OPEN_STATUSES, "resolved", "closed")
BUG_PRIORITIES: tuple[str, ...] = ("Critical", "High", "Medium", "Low")
FIX_STATES: tuple[str, ...] = ("pending", "claimed", "done", "skipped")

# Text from agents can be huge; keep rows bounded.
MAX_TEXT = 256 * 1024


class StoreError(Exception):
    """A storage problem people can act on.

    ``kind`` is one of ``locked``, ``read_only``, ``disk_full``, ``corrupt``,
    ``newer_schema``, ``cannot_open``, ``closed``, ``missing_table``, ``io``, ``other``.
    """

    def __init__(self, message: str, kind: str = "other") -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(slots=True)
class RespawnState:
    """Respawn bookkeeping for one task key (``task:spec-20`` or ``type:architect``)."""

    task_key: str
    attempts: int = 0
    last_attempt_ts: float | None = None
    next_allowed_ts: float | None = None
    given_up: bool = False
    given_up_ts: float | None = None
    last_start_ts: float | None = None
    recent_fast_exits: list[float] = field(default_factory=list)


# --------------------------------------------------------------------- schema

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


# --------------------------------------------------------------------- helpers


def _err_name(exc: BaseException) -> str:
    return str(getattr(exc, "sqlite_errorname", "") or "")


def _is_locked(exc: BaseException) -> bool:
    name = _err_name(exc)
    msg = str(exc).lower()
    return name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or (
        isinstance(exc, sqlite3.OperationalError)
        and ("database is locked" in msg or "database is busy" in msg or "table is locked" in msg)
    )


def _json_list(value: Any) -> list[Any]:
    if value is None or value == "[]" or value == "":
        return []
    try:
        out = json.loads(value)
    except (TypeError, ValueError):
        return []
    return out if isinstance(out, list) else []


def _json_dict(value: Any) -> dict[str, Any]:
    if not value:
        return {}
    try:
        out = json.loads(value)
    except (TypeError, ValueError):
        return {}
    return out if isinstance(out, dict) else {}


def _clip(text: str | None, limit: int = MAX_TEXT) -> str | None:
    if text is None:
        return None
    return text if len(text) <= limit else text[-limit:]


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)


def _opt_int(value: Any) -> int | None:
    if value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


_CRASH_FULL = (
    "crash_id, crashed_ts, agent_key, agent_pid, agent_type, task_id, exit_code, error_type, "
    "error_message, stack_trace, root_cause, related_files, fingerprint, log_excerpt, log_file, "
    "command_text, action_taken, respawned, bug_reported, bug_number, cwd, source, fix_state"
)
# Listings skip the two big text columns: ``ohm crashes --last=24h`` must stay fast.
_CRASH_SUMMARY = _CRASH_FULL.replace("stack_trace,", "NULL,").replace("log_excerpt,", "NULL,")


def _crash_row(r: Sequence[Any]) -> CrashRow:
    """Build a CrashRow positionally (the SELECT matches its field order).

    Listings build tens of thousands of these, so only the columns that need it
    are converted.
    """
    rf = r[11]
    return CrashRow(
        r[0],
        float(r[1] or 0.0),
        str(r[2]),
        r[3] if type(r[3]) is int else int(r[3]),
        str(r[4]),
        r[5],
        r[6] if r[6] is None or type(r[6]) is int else _opt_int(r[6]),
        r[7],
        r[8],
        r[9],
        r[10],
        [] if rf is None or rf == "[]" else [str(x) for x in _json_list(rf)],
        r[12],
        r[13],
        r[14],
        r[15],
        r[16],
        bool(r[17]),
        bool(r[18]),
        r[19] if r[19] is None or type(r[19]) is int else _opt_int(r[19]),
        r[20],
        r[21],
        r[22],
    )


_EVENT_COLS = (
    "event_id, ts, kind, message, agent_key, agent_pid, agent_type, task_id, crash_id, bug_number"
)


def _event_row(r: Sequence[Any]) -> Event:
    return Event(
        event_id=int(r[0]),
        ts=float(r[1]),
        kind=str(r[2]),
        message=str(r[3]),
        agent_key=r[4],
        agent_pid=_opt_int(r[5]),
        agent_type=r[6],
        task_id=r[7],
        crash_id=_opt_int(r[8]),
        bug_number=_opt_int(r[9]),
    )


_AGENT_COLS = (
    "agent_key",
    "pid",
    "create_time",
    "agent_type",
    "task_id",
    "argv",
    "command_text",
    "cwd",
    "log_file",
    "source_file",
    "respawn_of",
    "started_ts",
    "ended_ts",
    "exit_code",
    "status",
)

# Columns of ``bugs`` that BugRow needs (NULL when an older real table lacks one).
_BUG_WANTED = (
    "bug_number",
    "title",
    "description",
    "priority",
    "status",
    "category",
    "reporter",
    "assigned_to",
    "created_at",
    "updated_at",
    "root_cause",
    "reproduction_steps",
    "related_files",
)
_BUG_TIME_FIELDS = {"created_at", "updated_at", "resolved_at", "closed_at"}
_BUG_JSON_FIELDS = {"reproduction_steps", "related_files", "metadata"}
_META_FIELDS = {
    "fingerprint",
    "issue_type",
    "occurrences",
    "first_seen_ts",
    "last_seen_ts",
    "created_ts",
    "error_logs",
    "stack_trace",
}
_PRIORITY_RANK_SQL = (
    "CASE b.priority WHEN 'Critical' THEN 0 WHEN 'High' THEN 1 "
    "WHEN 'Medium' THEN 2 WHEN 'Low' THEN 3 ELSE 4 END"
)


# --------------------------------------------------------------------- the store


class Store:
    """One SQLite connection, shared by the threads of one process under an RLock."""

    def __init__(
        self,
        path: Path | str,
        *,
        busy_timeout: float = 10.0,
        lock_wait: float = 15.0,
        read_only: bool = False,
    ) -> None:
        text = str(path)
        self._uri: str | None = None
        if text.startswith("file:"):
            # An explicit SQLite URI, e.g. ``file:/x/orchestrator.db?mode=ro``.
            self._uri = text
            read_only = read_only or "mode=ro" in text.partition("?")[2]
            self.path = Path(text[5:].partition("?")[0])
        else:
            self.path = Path(path)
        self.read_only = read_only
        self.busy_timeout = busy_timeout
        self.lock_wait = lock_wait
        self._lock = threading.RLock()
        self._depth = 0
        self._conn: sqlite3.Connection | None = None
        self._bug_columns: set[str] = set()
        self.schema_version = 0
        self._retry(self._open, "open the database")

    @classmethod
    def open_readonly(cls, path: Path | str, **kwargs: Any) -> Store:
        """An observer's store: reads work, every write raises ``StoreError``."""
        return cls(path, read_only=True, **kwargs)

    # -- opening -------------------------------------------------------------
    def _connect(self, immutable: bool = False) -> sqlite3.Connection:
        if self.read_only:
            if self._uri is not None and not immutable:
                uri = self._uri
            else:
                if not self.path.exists():
                    raise StoreError(
                        f"cannot open database {self.path}: it does not exist", "cannot_open"
                    )
                uri = "file:" + quote(str(self.path.resolve())) + "?mode=ro"
                if immutable:
                    uri += "&immutable=1"
            return sqlite3.connect(
                uri,
                uri=True,
                timeout=self.busy_timeout,
                check_same_thread=False,
                isolation_level=None,
            )
        if self._uri is not None:
            return sqlite3.connect(
                self._uri,
                uri=True,
                timeout=self.busy_timeout,
                check_same_thread=False,
                isolation_level=None,
            )
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(
                f"cannot create directory {self.path.parent}: {exc.strerror or exc}", "cannot_open"
            ) from None
        return sqlite3.connect(
            self.path,
            timeout=self.busy_timeout,
            check_same_thread=False,
            isolation_level=None,
        )

    def _open(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        conn = self._connect()
        try:
            self._setup(conn)
        except sqlite3.OperationalError as exc:
            conn.close()
            # A read-only directory cannot hold the WAL's -shm file: read the file as is.
            if self.read_only and "unable to open" in str(exc).lower():
                conn = self._connect(immutable=True)
                try:
                    self._setup(conn)
                except BaseException:
                    conn.close()
                    raise
            else:
                raise
        except BaseException:
            conn.close()
            raise
        self._conn = conn

    def _setup(self, conn: sqlite3.Connection) -> None:
        conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
        conn.execute("PRAGMA foreign_keys = ON")
        if not self.read_only:
            mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
            if str(mode).lower() != "wal":
                conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
        version = self._read_version(conn)
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"database {self.path} has schema version {version}, newer than this ohm "
                f"understands ({SCHEMA_VERSION}); upgrade ohm or use another database",
                "newer_schema",
            )
        if version < SCHEMA_VERSION and not self.read_only:
            self._migrate(conn)
        else:
            self.schema_version = version
        self._bug_columns = set(_columns(conn, "bugs"))

    @staticmethod
    def _read_version(conn: sqlite3.Connection) -> int:
        has_meta = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type='table' AND name='ohm_meta'"
        ).fetchone()
        if not has_meta:
            return 0
        row = conn.execute("SELECT value FROM ohm_meta WHERE key='schema_version'").fetchone()
        try:
            return int(row[0]) if row else 0
        except (TypeError, ValueError):
            return 0

    def _migrate(self, conn: sqlite3.Connection) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS ohm_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)"
            )
            version = self._read_version(conn)  # another process may have migrated meanwhile
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"database {self.path} has schema version {version}, newer than this ohm "
                    f"understands ({SCHEMA_VERSION})",
                    "newer_schema",
                )
            for step in MIGRATIONS[version:]:
                step(conn)
            conn.execute(
                "INSERT INTO ohm_meta(key, value) VALUES ('schema_version', ?) "
                "ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                (str(SCHEMA_VERSION),),
            )
            conn.execute(
                "INSERT OR IGNORE INTO ohm_meta(key, value) VALUES ('created_ts', ?)",
                (repr(_now()),),
            )
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        self.schema_version = SCHEMA_VERSION

    # -- errors and retries ----------------------------------------------------
    def _error(self, exc: BaseException, action: str) -> StoreError:
        if isinstance(exc, StoreError):
            return exc
        name = _err_name(exc)
        msg = str(exc)
        low = msg.lower()
        where = f"{self.path}"
        if isinstance(exc, sqlite3.ProgrammingError) and "closed" in low:
            return StoreError(f"cannot {action}: the store for {where} is closed", "closed")
        if _is_locked(exc):
            return StoreError(
                f"database is locked: cannot {action}: {where} stayed busy (another process "
                f"holds a write lock) for more than {self.lock_wait:g}s",
                "locked",
            )
        if name.startswith("SQLITE_READONLY") or "readonly" in low or "read-only" in low:
            return StoreError(f"database is read-only: cannot {action} in {where}", "read_only")
        if name == "SQLITE_FULL" or "disk is full" in low:
            return StoreError(
                f"the disk is full: cannot {action} in {where} (free some space)", "disk_full"
            )
        if (
            name in ("SQLITE_CORRUPT", "SQLITE_NOTADB")
            or "malformed" in low
            or ("not a database" in low)
        ):
            return StoreError(f"database is corrupt: {where}: {msg}", "corrupt")
        if name == "SQLITE_CANTOPEN" or "unable to open" in low:
            return StoreError(f"cannot open database {where}: {msg}", "cannot_open")
        if "no such table" in low:
            return StoreError(f"cannot {action}: {msg} in {where}", "missing_table")
        if name.startswith("SQLITE_IOERR") or "disk i/o" in low:
            return StoreError(f"disk I/O error: cannot {action} in {where}: {msg}", "io")
        return StoreError(f"cannot {action} in {where}: {msg}")

    def _retry(self, fn: Callable[[], T], action: str) -> T:
        """Run ``fn``, waiting out a busy database up to ``lock_wait`` seconds."""
        deadline = time.monotonic() + self.lock_wait
        pause = 0.02
        while True:
            try:
                return fn()
            except StoreError:
                raise
            except sqlite3.Error as exc:
                if _is_locked(exc) and self._depth == 0 and time.monotonic() < deadline:
                    time.sleep(min(pause, max(0.0, deadline - time.monotonic())))
                    pause = min(pause * 2, 0.25)
                    continue
                raise self._error(exc, action) from exc

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreError(f"the store for {self.path} is closed", "closed")
        return self._conn

    def _check_writable(self, action: str) -> None:
        if self.read_only:
            raise StoreError(
                f"database is read-only: cannot {action} ({self.path} was opened read-only)",
                "read_only",
            )

    # -- transactions ----------------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT``; nested calls in one thread join the outer one."""
        self._check_writable("write")
        with self._lock:
            conn = self._connection()
            if self._depth > 0:
                self._depth += 1
                try:
                    yield conn
                finally:
                    self._depth -= 1
                return
            self._retry(lambda: conn.execute("BEGIN IMMEDIATE"), "begin a write")
            self._depth = 1
            try:
                yield conn
            except BaseException:
                self._depth = 0
                try:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
                raise
            self._depth = 0
            try:
                self._retry(lambda: conn.execute("COMMIT"), "commit")
            except BaseException:
                try:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
                raise

    def _write(self, fn: Callable[[sqlite3.Connection], T], action: str) -> T:
        """One write in its own transaction (or the caller's), retried while locked."""
        self._check_writable(action)
        with self._lock:
            conn = self._connection()
            if self._depth > 0:
                try:
                    return fn(conn)
                except sqlite3.Error as exc:
                    raise self._error(exc, action) from exc

            def attempt() -> T:
                with self.transaction():
                    return fn(conn)

            return self._retry(attempt, action)

    def _rows(
        self, sql: str, params: Sequence[Any] = (), *, action: str = "read", strict: bool = False
    ) -> list[tuple[Any, ...]]:
        """Run a read. A read-only observer of a database ohm never set up sees no rows,
        except for ``strict`` reads (deduplication) which must fail loudly."""
        with self._lock:
            conn = self._connection()
            try:
                return self._retry(lambda: conn.execute(sql, params).fetchall(), action)
            except StoreError as exc:
                if exc.kind == "missing_table" and self.read_only and not strict:
                    return []
                raise

    def _one(
        self, sql: str, params: Sequence[Any] = (), *, action: str = "read", strict: bool = False
    ) -> tuple[Any, ...] | None:
        rows = self._rows(sql, params, action=action, strict=strict)
        return rows[0] if rows else None

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                try:
                    self._conn.close()
                finally:
                    self._conn = None

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- health checks ---------------------------------------------------------
    def record_health_check(
        self,
        report: HealthReport,
        *,
        zombie_processes: int,
        orchestrator_responsive: bool | None,
        actions: list[str],
        bugs: list[int],
        monitor: str,
    ) -> int:
        poll = report.orchestrator_last_poll
        values = (
            iso_utc(report.checked_at),
            report.status,
            report.active_agents,
            report.crashed_agents_last_hour,
            zombie_processes,
            None if orchestrator_responsive is None else int(orchestrator_responsive),
            None if poll is None else int(poll),
            json.dumps(actions),
            json.dumps(bugs),
            report.checked_at,
            json.dumps([i.to_dict() for i in report.issues], default=str),
            monitor,
        )

        def run(conn: sqlite3.Connection) -> int:
            cur = conn.execute(
                "INSERT INTO health_checks (timestamp, status, active_agents, crashed_agents, "
                "zombie_processes, orchestrator_responsive, last_poll_age_seconds, actions_taken, "
                "bugs_reported, ts, issues_json, monitor) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                values,
            )
            return int(cur.lastrowid or 0)

        return self._write(run, "record a health check")

    def list_health_checks(
        self, *, since: float | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        """Recent checks, newest first, as dicts (``issues`` decoded)."""
        rows = self._rows(
            "SELECT check_id, ts, status, active_agents, crashed_agents, zombie_processes, "
            "orchestrator_responsive, last_poll_age_seconds, actions_taken, bugs_reported, "
            "issues_json, monitor FROM health_checks WHERE ts >= ? ORDER BY ts DESC LIMIT ?",
            (since if since is not None else -1.0, limit),
        )
        out = []
        for r in rows:
            out.append(
                {
                    "check_id": r[0],
                    "ts": r[1],
                    "status": r[2],
                    "active_agents": r[3],
                    "crashed_agents": r[4],
                    "zombie_processes": r[5],
                    "orchestrator_responsive": None if r[6] is None else bool(r[6]),
                    "last_poll_age_seconds": r[7],
                    "actions_taken": _json_list(r[8]),
                    "bugs_reported": _json_list(r[9]),
                    "issues": _json_list(r[10]),
                    "monitor": r[11],
                }
            )
        return out

    # -- crashes ---------------------------------------------------------------
    def record_crash(
        self,
        *,
        agent_key: str,
        agent_pid: int,
        agent_type: str,
        task_id: str | None,
        crashed_at: float,
        exit_code: int | None,
        info: CrashInfo,
        log_file: str | None,
        command_text: str | None,
        cwd: str | None,
        source: str,
        action_taken: str | None = None,
        fix_state: str = "pending",
    ) -> tuple[int, bool]:
        """Record one crashed run once: a second call for the same run returns its id."""
        if fix_state not in FIX_STATES:
            raise ValueError(f"fix_state must be one of {', '.join(FIX_STATES)}: {fix_state!r}")
        values = (
            agent_pid,
            agent_type,
            task_id,
            iso_utc(crashed_at),
            info.error_type,
            _clip(info.error_message, 16384),
            _clip(info.stack_trace),
            0,
            0,
            crashed_at,
            agent_key,
            exit_code,
            _clip(info.root_cause, 16384),
            json.dumps(list(info.related_files)),
            info.fingerprint,
            _clip(info.log_excerpt),
            log_file,
            command_text,
            cwd,
            source,
            action_taken,
            fix_state,
        )

        def run(conn: sqlite3.Connection) -> tuple[int, bool]:
            cur = conn.execute(
                "INSERT OR IGNORE INTO agent_crashes (agent_pid, agent_type, task_id, crashed_at, "
                "error_type, error_message, stack_trace, respawned, bug_reported, crashed_ts, "
                "agent_key, exit_code, root_cause, related_files, fingerprint, log_excerpt, "
                "log_file, command_text, cwd, source, action_taken, fix_state) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                values,
            )
            if cur.rowcount == 1:
                return int(cur.lastrowid or 0), True
            if exit_code is not None:  # the runner's record came after the death event
                conn.execute(
                    "UPDATE agent_crashes SET exit_code=? WHERE agent_key=? AND exit_code IS NULL",
                    (exit_code, agent_key),
                )
            row = conn.execute(
                "SELECT crash_id FROM agent_crashes WHERE agent_key=?", (agent_key,)
            ).fetchone()
            return int(row[0]), False

        return self._write(run, "record a crash")

    def get_crash(self, crash_id: int) -> CrashRow | None:
        row = self._one(f"SELECT {_CRASH_FULL} FROM agent_crashes WHERE crash_id=?", (crash_id,))
        return _crash_row(row) if row else None

    def crash_by_key(self, agent_key: str) -> CrashRow | None:
        row = self._one(f"SELECT {_CRASH_FULL} FROM agent_crashes WHERE agent_key=?", (agent_key,))
        return _crash_row(row) if row else None

    def list_crashes(
        self,
        *,
        since: float | None = None,
        agent_type: str | None = None,
        task_id: str | None = None,
        fingerprint: str | None = None,
        limit: int | None = None,
        summary: bool = False,
    ) -> list[CrashRow]:
        """Crashes newest first. ``summary=True`` leaves out stack traces and log excerpts."""
        where, params = self._crash_filter(since, agent_type, task_id, fingerprint)
        sql = f"SELECT {_CRASH_SUMMARY if summary else _CRASH_FULL} FROM agent_crashes{where}"
        sql += " ORDER BY crashed_ts DESC, crash_id DESC"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(int(limit))
        return [_crash_row(r) for r in self._rows(sql, params, action="list crashes")]

    @staticmethod
    def _crash_filter(
        since: float | None,
        agent_type: str | None,
        task_id: str | None,
        fingerprint: str | None,
    ) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        params: list[Any] = []
        if agent_type is not None:
            clauses.append("agent_type = ?")
            params.append(agent_type)
        if task_id is not None:
            clauses.append("task_id = ?")
            params.append(task_id)
        if fingerprint is not None:
            clauses.append("fingerprint = ?")
            params.append(fingerprint)
        if since is not None:
            clauses.append("crashed_ts >= ?")
            params.append(float(since))
        return (" WHERE " + " AND ".join(clauses) if clauses else ""), params

    def count_crashes(
        self,
        since: float,
        *,
        agent_type: str | None = None,
        task_id: str | None = None,
        fingerprint: str | None = None,
    ) -> int:
        where, params = self._crash_filter(since, agent_type, task_id, fingerprint)
        row = self._one(f"SELECT COUNT(*) FROM agent_crashes{where}", params)
        return int(row[0]) if row else 0

    def crash_histogram(self, *, since: float, bucket_seconds: int, buckets: int) -> list[int]:
        """Crashes per bucket from ``since``, oldest first; later crashes land in the last."""
        if bucket_seconds <= 0 or buckets <= 0:
            raise ValueError("bucket_seconds and buckets must be greater than 0")
        rows = self._rows(
            "SELECT MIN(CAST((crashed_ts - ?) / ? AS INTEGER), ?) AS b, COUNT(*) "
            "FROM agent_crashes WHERE crashed_ts >= ? GROUP BY b",
            (float(since), float(bucket_seconds), buckets - 1, float(since)),
        )
        out = [0] * buckets
        for b, n in rows:
            out[int(b)] += int(n)
        return out

    def oldest_crash_since(self, since: float) -> float | None:
        """When the oldest crash at or after ``since`` happened (what a histogram must cover)."""
        row = self._one("SELECT MIN(crashed_ts) FROM agent_crashes WHERE crashed_ts >= ?", (since,))
        return None if row is None or row[0] is None else float(row[0])

    def pending_crashes(self) -> list[CrashRow]:
        rows = self._rows(
            f"SELECT {_CRASH_FULL} FROM agent_crashes WHERE fix_state='pending' "
            "ORDER BY crashed_ts, crash_id"
        )
        return [_crash_row(r) for r in rows]

    def claim_crash(self, crash_id: int, claimer: str, *, now: float | None = None) -> bool:
        """Take a pending crash for fixing; exactly one caller across processes wins."""
        ts = _now() if now is None else now

        def run(conn: sqlite3.Connection) -> bool:
            cur = conn.execute(
                "UPDATE agent_crashes SET fix_state='claimed', fix_claimed_by=?, fix_claimed_ts=? "
                "WHERE crash_id=? AND fix_state='pending'",
                (claimer, ts, crash_id),
            )
            return cur.rowcount == 1

        return self._write(run, "claim a crash")

    def finish_crash(
        self,
        crash_id: int,
        *,
        action_taken: str,
        respawned: bool | None = None,
        fix_state: str = "done",
    ) -> None:
        if fix_state not in FIX_STATES:
            raise ValueError(f"fix_state must be one of {', '.join(FIX_STATES)}: {fix_state!r}")

        def run(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE agent_crashes SET action_taken=?, fix_state=?, "
                "respawned=COALESCE(?, respawned) WHERE crash_id=?",
                (action_taken, fix_state, None if respawned is None else int(respawned), crash_id),
            )

        self._write(run, "finish a crash")

    def set_crash_bug(self, crash_id: int, bug_number: int) -> None:
        self._write(
            lambda c: c.execute(
                "UPDATE agent_crashes SET bug_reported=1, bug_number=? WHERE crash_id=?",
                (bug_number, crash_id),
            ),
            "link a crash to a bug",
        )

    def claimed_crashes(self) -> list[tuple[int, str | None, float | None]]:
        """``(crash_id, claimed_by, claimed_ts)`` of every crash being fixed right now."""
        rows = self._rows(
            "SELECT crash_id, fix_claimed_by, fix_claimed_ts FROM agent_crashes "
            "WHERE fix_state='claimed'"
        )
        return [(int(r[0]), r[1], _opt_float(r[2])) for r in rows]

    def release_claim(self, crash_id: int, claimer: str) -> bool:
        """Give one claim back to pending, if ``claimer`` still holds it."""

        def run(conn: sqlite3.Connection) -> bool:
            cur = conn.execute(
                "UPDATE agent_crashes SET fix_state='pending', fix_claimed_by=NULL, "
                "fix_claimed_ts=NULL WHERE crash_id=? AND fix_state='claimed' "
                "AND fix_claimed_by=?",
                (crash_id, claimer),
            )
            return cur.rowcount == 1

        return self._write(run, "release a claim")

    def respawn_of_crash(self, crash_id: int) -> tuple[str | None, float] | None:
        """``(new_key, ts)`` of the successful respawn recorded for a crash, if any."""
        row = self._one(
            "SELECT new_key, ts FROM ohm_respawns WHERE crash_id=? AND ok=1 ORDER BY id LIMIT 1",
            (crash_id,),
        )
        return (row[0], float(row[1])) if row else None

    def ohm_agent_respawning(self, old_key: str) -> dict[str, Any] | None:
        """The run ohm started in place of ``old_key``, if it recorded one."""
        row = self._one(
            f"SELECT {', '.join(_AGENT_COLS)} FROM ohm_agents WHERE respawn_of=? "
            "ORDER BY started_ts LIMIT 1",
            (old_key,),
        )
        return self._agent_dict(row) if row else None

    def release_stale_claims(self, older_than_ts: float) -> int:
        """Claims left by a monitor that died mid-fix go back to pending."""

        def run(conn: sqlite3.Connection) -> int:
            cur = conn.execute(
                "UPDATE agent_crashes SET fix_state='pending', fix_claimed_by=NULL, "
                "fix_claimed_ts=NULL WHERE fix_state='claimed' AND "
                "COALESCE(fix_claimed_ts, 0) < ?",
                (older_than_ts,),
            )
            return int(cur.rowcount)

        return self._write(run, "release stale claims")

    # -- events ----------------------------------------------------------------
    def add_event(
        self,
        kind: str,
        message: str,
        *,
        ts: float | None = None,
        agent_key: str | None = None,
        agent_pid: int | None = None,
        agent_type: str | None = None,
        task_id: str | None = None,
        crash_id: int | None = None,
        bug_number: int | None = None,
        data: dict[str, Any] | None = None,
    ) -> Event:
        at = _now() if ts is None else ts
        kind = str(kind)  # an EventKind is stored as its text
        msg = _clip(message, 4096) or ""
        values = (
            at,
            kind,
            msg,
            agent_key,
            agent_pid,
            agent_type,
            task_id,
            crash_id,
            bug_number,
            json.dumps(data, default=str) if data else None,
        )

        def run(conn: sqlite3.Connection) -> int:
            cur = conn.execute(
                "INSERT INTO ohm_events (ts, kind, message, agent_key, agent_pid, agent_type, "
                "task_id, crash_id, bug_number, data) VALUES (?,?,?,?,?,?,?,?,?,?)",
                values,
            )
            return int(cur.lastrowid or 0)

        event_id = self._write(run, "record an event")
        return Event(
            event_id=event_id,
            ts=at,
            kind=kind,
            message=msg,
            agent_key=agent_key,
            agent_pid=agent_pid,
            agent_type=agent_type,
            task_id=task_id,
            crash_id=crash_id,
            bug_number=bug_number,
        )

    def list_events(
        self, *, since: float | None = None, after_id: int | None = None, limit: int = 200
    ) -> list[Event]:
        """Newest first; ``after_id`` gives only events newer than that one (for tailing)."""
        clauses, params = [], []
        if since is not None:
            clauses.append("ts >= ?")
            params.append(float(since))
        if after_id is not None:
            clauses.append("event_id > ?")
            params.append(int(after_id))
        where = " WHERE " + " AND ".join(clauses) if clauses else ""
        params.append(int(limit))
        rows = self._rows(
            f"SELECT {_EVENT_COLS} FROM ohm_events{where} ORDER BY event_id DESC LIMIT ?", params
        )
        return [_event_row(r) for r in rows]

    def event_data(self, event_id: int) -> dict[str, Any]:
        row = self._one("SELECT data FROM ohm_events WHERE event_id=?", (event_id,))
        return _json_dict(row[0]) if row else {}

    # -- respawns --------------------------------------------------------------
    def get_respawn_state(self, task_key: str) -> RespawnState:
        row = self._one(
            "SELECT attempts, last_attempt_ts, next_allowed_ts, given_up, given_up_ts, "
            "last_start_ts, recent_fast_exits FROM ohm_respawn_state WHERE task_key=?",
            (task_key,),
        )
        if row is None:
            return RespawnState(task_key)
        return RespawnState(
            task_key=task_key,
            attempts=int(row[0] or 0),
            last_attempt_ts=_opt_float(row[1]),
            next_allowed_ts=_opt_float(row[2]),
            given_up=bool(row[3]),
            given_up_ts=_opt_float(row[4]),
            last_start_ts=_opt_float(row[5]),
            recent_fast_exits=[float(x) for x in _json_list(row[6]) if isinstance(x, int | float)],
        )

    def save_respawn_state(self, state: RespawnState) -> None:
        values = (
            state.task_key,
            state.attempts,
            state.last_attempt_ts,
            state.next_allowed_ts,
            int(state.given_up),
            state.given_up_ts,
            state.last_start_ts,
            json.dumps(list(state.recent_fast_exits)),
        )
        self._write(
            lambda c: c.execute(
                "INSERT OR REPLACE INTO ohm_respawn_state (task_key, attempts, last_attempt_ts, "
                "next_allowed_ts, given_up, given_up_ts, last_start_ts, recent_fast_exits) "
                "VALUES (?,?,?,?,?,?,?,?)",
                values,
            ),
            "save respawn state",
        )

    def add_respawn(
        self,
        *,
        task_key: str,
        crash_id: int | None,
        old_key: str | None,
        new_key: str | None,
        ok: bool,
        message: str,
        ts: float,
    ) -> None:
        self._write(
            lambda c: c.execute(
                "INSERT INTO ohm_respawns (ts, task_key, crash_id, old_key, new_key, ok, message) "
                "VALUES (?,?,?,?,?,?,?)",
                (ts, task_key, crash_id, old_key, new_key, int(ok), message),
            ),
            "record a respawn",
        )

    def respawn_success_rate(self, since: float | None = None) -> float | None:
        """Share of respawn attempts that worked; ``None`` when there were none."""
        row = self._one(
            "SELECT COUNT(*), COALESCE(SUM(ok), 0) FROM ohm_respawns WHERE ts >= ?",
            (since if since is not None else -1.0,),
        )
        if not row or not row[0]:
            return None
        return float(row[1]) / float(row[0])

    def recovery_rate(self, *, since: float, stable_after: float, now: float) -> float | None:
        """Share of respawns after which the agent recovered; ``None`` when none is decided.

        A respawn is a recovery when the new run stayed alive ``stable_after``
        seconds, or ended cleanly (exit 0) before that. It failed when it could
        not start, or the new run crashed (or exited non-zero) within that time.
        A run still younger than ``stable_after`` is not decided yet. So the
        figure cannot read 100 % while agents crash again after every respawn.
        """
        rows = self._rows(
            "SELECT r.ok, a.started_ts, a.ended_ts, a.exit_code, "
            "(SELECT MIN(c.crashed_ts) FROM agent_crashes c WHERE c.agent_key = r.new_key) "
            "FROM ohm_respawns r LEFT JOIN ohm_agents a ON a.agent_key = r.new_key "
            "WHERE r.ts >= ?",
            (float(since),),
            action="compute the recovery rate",
        )
        good = decided = 0
        for ok, started, ended, exit_code, crashed in rows:
            if not ok:
                decided += 1
                continue
            if started is None:
                continue  # its run is not recorded (yet): nothing to judge
            start = float(started)
            if crashed is not None and float(crashed) - start < stable_after:
                decided += 1
            elif ended is not None and float(ended) - start < stable_after:
                decided += 1
                good += int(exit_code == 0)
            elif (float(ended) if ended is not None else now) - start >= stable_after:
                decided += 1
                good += 1
        return good / decided if decided else None

    def failed_respawns(self) -> list[dict[str, Any]]:
        """Tasks whose latest respawn could not start: ``task_key, ts, crash_id, old_key, message``.

        The newest row per task decides: a later respawn that worked clears it.
        """
        rows = self._rows(
            "SELECT r.task_key, r.ts, r.crash_id, r.old_key, r.message FROM ohm_respawns r "
            "WHERE r.ok = 0 AND r.id = (SELECT MAX(id) FROM ohm_respawns x "
            "WHERE x.task_key = r.task_key) ORDER BY r.ts",
            action="list failed respawns",
        )
        return [
            {
                "task_key": r[0],
                "ts": float(r[1]),
                "crash_id": r[2],
                "old_key": r[3],
                "message": r[4],
            }
            for r in rows
        ]

    def operator_stop(self, agent_key: str, since: float) -> str | None:
        """The latest operator stop/restart of this run since ``since`` (an ``EventKind``
        value), ``stop_failed`` when that stop did not happen, else ``None``."""
        row = self._one(
            "SELECT kind FROM ohm_events WHERE ts >= ? AND agent_key = ? "
            "AND kind IN ('stopped_by_operator', 'restarted_by_operator', 'stop_failed') "
            "ORDER BY event_id DESC LIMIT 1",
            (float(since), agent_key),
        )
        return str(row[0]) if row else None

    # -- agents ohm spawned ----------------------------------------------------
    def add_ohm_agent(
        self,
        *,
        agent_key: str,
        pid: int,
        create_time: float | None,
        agent_type: str,
        task_id: str | None,
        argv: Sequence[str],
        command_text: str | None,
        cwd: str | None,
        log_file: str | None,
        started_ts: float,
        source_file: str | None = None,
        respawn_of: str | None = None,
    ) -> None:
        values = (
            agent_key,
            pid,
            create_time,
            agent_type,
            task_id,
            json.dumps(list(argv)),
            command_text,
            cwd,
            log_file,
            source_file,
            respawn_of,
            started_ts,
        )
        self._write(
            lambda c: c.execute(
                "INSERT OR REPLACE INTO ohm_agents (agent_key, pid, create_time, agent_type, "
                "task_id, argv, command_text, cwd, log_file, source_file, respawn_of, started_ts, "
                "ended_ts, exit_code, status) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,NULL,NULL,'running')",
                values,
            ),
            "record a spawned agent",
        )

    @staticmethod
    def _agent_dict(r: Sequence[Any]) -> dict[str, Any]:
        d = dict(zip(_AGENT_COLS, r, strict=True))
        d["argv"] = [str(x) for x in _json_list(d["argv"])]
        return d

    def ohm_agent(self, agent_key: str) -> dict[str, Any] | None:
        row = self._one(
            f"SELECT {', '.join(_AGENT_COLS)} FROM ohm_agents WHERE agent_key=?", (agent_key,)
        )
        return self._agent_dict(row) if row else None

    def list_ohm_agents(self, *, running_only: bool = True) -> list[dict[str, Any]]:
        where = " WHERE status='running'" if running_only else ""
        rows = self._rows(
            f"SELECT {', '.join(_AGENT_COLS)} FROM ohm_agents{where} ORDER BY started_ts"
        )
        return [self._agent_dict(r) for r in rows]

    def mark_ohm_agent_exited(
        self, agent_key: str, *, exit_code: int | None, ended_ts: float
    ) -> None:
        self._write(
            lambda c: c.execute(
                "UPDATE ohm_agents SET status='exited', exit_code=?, ended_ts=? WHERE agent_key=?",
                (exit_code, ended_ts, agent_key),
            ),
            "mark a spawned agent exited",
        )

    # -- runs seen alive -------------------------------------------------------
    def mark_seen(self, keys: Iterable[str], ts: float) -> None:
        rows = [(k, ts, ts) for k in dict.fromkeys(keys)]
        if not rows:
            return
        self._write(
            lambda c: c.executemany(
                "INSERT INTO ohm_seen (agent_key, first_seen_ts, last_seen_ts) VALUES (?,?,?) "
                "ON CONFLICT(agent_key) DO UPDATE SET last_seen_ts=excluded.last_seen_ts",
                rows,
            ),
            "mark agents seen",
        )

    def seen(self, keys: Iterable[str]) -> set[str]:
        wanted = list(dict.fromkeys(keys))
        found: set[str] = set()
        for i in range(0, len(wanted), 500):
            chunk = wanted[i : i + 500]
            marks = ",".join("?" * len(chunk))
            rows = self._rows(f"SELECT agent_key FROM ohm_seen WHERE agent_key IN ({marks})", chunk)
            found.update(str(r[0]) for r in rows)
        return found

    # -- the fixer lease -------------------------------------------------------
    def acquire_lease(
        self,
        name: str,
        holder: str,
        *,
        ttl: float,
        now: float,
        holder_pid: int,
        holder_create_time: float,
        is_alive: Callable[[int, float], bool],
    ) -> bool:
        """Take or renew ``name``: free, expired, ours, or held by a dead process."""

        def run(conn: sqlite3.Connection) -> bool:
            row = conn.execute(
                "SELECT holder, holder_pid, holder_create_time, acquired_ts, expires_ts "
                "FROM ohm_lease WHERE name=?",
                (name,),
            ).fetchone()
            acquired = now
            if row is not None:
                cur_holder, cur_pid, cur_ct, cur_acq, cur_exp = row
                ours = cur_holder == holder and cur_pid == holder_pid
                if ours:
                    acquired = float(cur_acq)
                elif float(cur_exp) > now and (
                    cur_pid is None or is_alive(int(cur_pid), float(cur_ct or 0.0))
                ):
                    return False
            conn.execute(
                "INSERT OR REPLACE INTO ohm_lease (name, holder, holder_pid, holder_create_time, "
                "acquired_ts, expires_ts) VALUES (?,?,?,?,?,?)",
                (name, holder, holder_pid, holder_create_time, acquired, now + ttl),
            )
            return True

        return self._write(run, "acquire the fixer lease")

    def release_lease(self, name: str, holder: str) -> None:
        self._write(
            lambda c: c.execute("DELETE FROM ohm_lease WHERE name=? AND holder=?", (name, holder)),
            "release the fixer lease",
        )

    def lease_holder(self, name: str) -> dict[str, Any] | None:
        row = self._one(
            "SELECT holder, holder_pid, holder_create_time, acquired_ts, expires_ts "
            "FROM ohm_lease WHERE name=?",
            (name,),
        )
        if row is None:
            return None
        keys = ("holder", "holder_pid", "holder_create_time", "acquired_ts", "expires_ts")
        return dict(zip(keys, row, strict=True))

    # -- bugs --------------------------------------------------------------------
    def _bug_select(self) -> str:
        cols = [f"b.{c}" if c in self._bug_columns else f"NULL AS {c}" for c in _BUG_WANTED]
        return (
            f"SELECT {', '.join(cols)}, m.error_logs, m.stack_trace, m.fingerprint, "
            "m.issue_type, m.occurrences, m.last_seen_ts, m.created_ts "
            "FROM bugs b LEFT JOIN ohm_bug_meta m ON m.bug_number = b.bug_number"
        )

    @staticmethod
    def _bug_row(r: Sequence[Any]) -> BugRow:
        created = _opt_float(r[19]) if r[19] is not None else to_epoch(r[8])
        return BugRow(
            bug_number=int(r[0]),
            title=str(r[1] or ""),
            description=str(r[2] or ""),
            priority=str(r[3] or "Medium"),
            status=str(r[4] or "open"),
            category=r[5],
            reporter=str(r[6] or ""),
            assigned_to=r[7],
            created_at=created,
            updated_at=to_epoch(r[9]),
            root_cause=r[10],
            reproduction_steps=[str(x) for x in _json_list(r[11])],
            related_files=[str(x) for x in _json_list(r[12])],
            error_logs=r[13],
            stack_trace=r[14],
            fingerprint=r[15],
            issue_type=r[16],
            occurrences=int(r[17]) if r[17] is not None else 1,
            last_seen=_opt_float(r[18]) if r[18] is not None else to_epoch(r[9]),
        )

    @property
    def bug_columns(self) -> frozenset[str]:
        """Columns of the ``bugs`` table as found (the real tracker's may have more)."""
        return frozenset(self._bug_columns)

    def next_bug_number(self) -> int:
        row = self._one("SELECT COALESCE(MAX(bug_number), 0) + 1 FROM bugs")
        return int(row[0]) if row else 1

    def insert_bug(
        self,
        *,
        title: str,
        description: str,
        priority: str,
        status: str = "open",
        category: str | None,
        reporter: str = "ohm",
        assigned_to: str | None,
        reproduction_steps: list[str],
        root_cause: str | None,
        related_files: list[str],
        metadata: dict[str, Any],
        fingerprint: str | None,
        issue_type: str | None,
        error_logs: str | None,
        stack_trace: str | None,
        now: float,
        number_taken: Callable[[int], bool] | None = None,
    ) -> int:
        """File a bug as ``MAX(bug_number)+1`` under the write lock (``BEGIN IMMEDIATE``:
        the real tracker reads MAX without one); returns its number.

        ``number_taken(n)``: a number whose ticket file already exists is skipped, so
        that no ticket is ever overwritten. Shared time columns are naive local ISO,
        as the tracker writes and subtracts them.
        """
        if priority not in BUG_PRIORITIES:
            raise ValueError(f"priority must be one of {', '.join(BUG_PRIORITIES)}: {priority!r}")
        if status not in BUG_STATUSES:
            raise ValueError(f"status must be one of {', '.join(BUG_STATUSES)}: {status!r}")
        stamp = iso_local_naive(now)
        fields: dict[str, Any] = {
            "title": title,
            "description": _clip(description, 65536) or "",
            "priority": priority,
            "status": status,
            "category": category,
            "reporter": reporter,
            "assigned_to": assigned_to,
            "created_at": stamp,
            "updated_at": stamp,
            "reproduction_steps": json.dumps(list(reproduction_steps)),
            "root_cause": _clip(root_cause, 16384),
            "related_files": json.dumps(list(related_files)),
            "metadata": json.dumps(metadata, default=str),
        }
        fields = {k: v for k, v in fields.items() if k in self._bug_columns}

        def run(conn: sqlite3.Connection) -> int:
            row = conn.execute("SELECT COALESCE(MAX(bug_number), 0) + 1 FROM bugs").fetchone()
            number = int(row[0])
            for _ in range(1000):
                if number_taken is None or not number_taken(number):
                    break
                number += 1  # its ticket exists (the tracker once numbered past the table)
            for _ in range(20):
                try:
                    names = ["bug_number", *fields]
                    conn.execute(
                        f"INSERT INTO bugs ({', '.join(names)}) "
                        f"VALUES ({', '.join('?' * len(names))})",
                        (number, *fields.values()),
                    )
                    break
                except sqlite3.IntegrityError as exc:
                    if "unique" not in str(exc).lower():
                        raise
                    number += 1  # someone without our lock took it: use the next one
            else:
                raise StoreError(f"cannot find a free bug number in {self.path}")
            conn.execute(
                "INSERT OR REPLACE INTO ohm_bug_meta (bug_number, fingerprint, issue_type, "
                "occurrences, first_seen_ts, last_seen_ts, created_ts, error_logs, stack_trace) "
                "VALUES (?,?,?,1,?,?,?,?,?)",
                (
                    number,
                    fingerprint,
                    issue_type,
                    now,
                    now,
                    now,
                    _clip(error_logs),
                    _clip(stack_trace),
                ),
            )
            return number

        return self._write(run, "file a bug")

    def get_bug(self, n: int) -> BugRow | None:
        row = self._one(f"{self._bug_select()} WHERE b.bug_number=?", (n,))
        return self._bug_row(row) if row else None

    def bug_metadata(self, n: int) -> dict[str, Any]:
        if "metadata" not in self._bug_columns:
            return {}
        row = self._one("SELECT metadata FROM bugs WHERE bug_number=?", (n,))
        return _json_dict(row[0]) if row else {}

    def list_bugs(self, *, status: str = "open", limit: int | None = None) -> list[BugRow]:
        """Open bugs first, then by priority (Critical first), newest number first.

        ``status``: ``open`` (open/analyzing/in_progress/testing), ``all``, or one status.
        """
        params: list[Any] = []
        if status == "open":
            where = f" WHERE b.status IN ({','.join('?' * len(OPEN_STATUSES))})"
            params.extend(OPEN_STATUSES)
        elif status == "all":
            where = ""
        elif status in BUG_STATUSES:
            where = " WHERE b.status = ?"
            params.append(status)
        else:
            choices = ", ".join(BUG_STATUSES)
            raise ValueError(f"unknown bug status {status!r} (use open, all, or one of {choices})")
        open_first = (
            f"CASE WHEN b.status IN ({','.join(repr(s) for s in OPEN_STATUSES)}) THEN 0 ELSE 1 END"
        )
        order = f"{open_first}, {_PRIORITY_RANK_SQL}, b.bug_number DESC"
        sql = f"{self._bug_select()}{where} ORDER BY {order}"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(int(limit))
        return [self._bug_row(r) for r in self._rows(sql, params, action="list bugs")]

    def open_bug_by_fingerprint(self, fp: str) -> BugRow | None:
        """The newest open bug with this fingerprint. Raises ``StoreError`` when it cannot look."""
        marks = ",".join("?" * len(OPEN_STATUSES))
        row = self._one(
            f"{self._bug_select()} WHERE m.fingerprint = ? AND b.status IN ({marks}) "
            "ORDER BY b.bug_number DESC LIMIT 1",
            (fp, *OPEN_STATUSES),
            action="look up a bug by fingerprint",
            strict=True,
        )
        return self._bug_row(row) if row else None

    def update_bug(self, n: int, **fields: Any) -> None:
        """Change columns of a bug (``bugs`` columns and ohm's meta fields alike).

        Times may be epoch floats (written as ISO UTC text); lists/dicts are JSON.
        ``updated_at`` is set to ``now`` (a keyword, default the clock) unless given.
        Raises ``KeyError`` for an unknown bug, ``ValueError`` for an unknown field.
        """
        now = fields.pop("now", None)
        bug_set: dict[str, Any] = {}
        meta_set: dict[str, Any] = {}
        for key, value in fields.items():
            if key in _META_FIELDS:
                meta_set[key] = value
            elif key in ("bug_id", "bug_number"):
                raise ValueError(f"cannot change {key}")
            elif key in self._bug_columns or key in _BUG_TIME_FIELDS | _BUG_JSON_FIELDS:
                if key in _BUG_TIME_FIELDS and isinstance(value, int | float):
                    value = iso_local_naive(float(value))  # the tracker's own format
                elif key in _BUG_JSON_FIELDS and not isinstance(value, str | None):
                    value = json.dumps(value, default=str)
                if key == "priority" and value not in BUG_PRIORITIES:
                    raise ValueError(f"priority must be one of {', '.join(BUG_PRIORITIES)}")
                if key == "status" and value not in BUG_STATUSES:
                    raise ValueError(f"status must be one of {', '.join(BUG_STATUSES)}")
                if key in self._bug_columns:
                    bug_set[key] = value
            else:
                raise ValueError(f"unknown bug field {key!r}")
        if "updated_at" in self._bug_columns and "updated_at" not in bug_set:
            bug_set["updated_at"] = iso_local_naive(_now() if now is None else float(now))

        def run(conn: sqlite3.Connection) -> None:
            if not conn.execute("SELECT 1 FROM bugs WHERE bug_number=?", (n,)).fetchone():
                raise KeyError(f"unknown bug BUG-{n:03d}")
            if bug_set:
                assigns = ", ".join(f"{k}=?" for k in bug_set)
                conn.execute(
                    f"UPDATE bugs SET {assigns} WHERE bug_number=?", (*bug_set.values(), n)
                )
            if meta_set:
                conn.execute("INSERT OR IGNORE INTO ohm_bug_meta (bug_number) VALUES (?)", (n,))
                assigns = ", ".join(f"{k}=?" for k in meta_set)
                conn.execute(
                    f"UPDATE ohm_bug_meta SET {assigns} WHERE bug_number=?",
                    (*meta_set.values(), n),
                )

        self._write(run, "update a bug")

    def touch_bug(
        self,
        n: int,
        *,
        occurrences_delta: int = 1,
        last_seen: float,
        priority: str | None = None,
    ) -> None:
        """One more occurrence of a known bug (and maybe a new priority)."""
        if priority is not None and priority not in BUG_PRIORITIES:
            raise ValueError(f"priority must be one of {', '.join(BUG_PRIORITIES)}: {priority!r}")

        def run(conn: sqlite3.Connection) -> None:
            if not conn.execute("SELECT 1 FROM bugs WHERE bug_number=?", (n,)).fetchone():
                raise KeyError(f"unknown bug BUG-{n:03d}")
            conn.execute(
                "INSERT OR IGNORE INTO ohm_bug_meta (bug_number, occurrences, first_seen_ts) "
                "VALUES (?, 1, ?)",
                (n, last_seen),
            )
            conn.execute(
                "UPDATE ohm_bug_meta SET occurrences = occurrences + ?, "
                "last_seen_ts = MAX(COALESCE(last_seen_ts, ?), ?) WHERE bug_number=?",
                (occurrences_delta, last_seen, last_seen, n),
            )
            sets: dict[str, Any] = {}
            if "updated_at" in self._bug_columns:
                sets["updated_at"] = iso_local_naive(last_seen)
            if priority is not None:
                sets["priority"] = priority
            if sets:
                assigns = ", ".join(f"{k}=?" for k in sets)
                conn.execute(f"UPDATE bugs SET {assigns} WHERE bug_number=?", (*sets.values(), n))

        self._write(run, "update a bug")

    def last_bug_created_ts(self, issue_type: str) -> float | None:
        row = self._one(
            "SELECT MAX(created_ts) FROM ohm_bug_meta WHERE issue_type=?",
            (issue_type,),
            action="look up the last bug of this kind",
            strict=True,
        )
        return _opt_float(row[0]) if row else None

    def last_event_ts(self, kind: str, *, data_contains: str | None = None) -> float | None:
        """When the newest event of ``kind`` (whose data holds ``data_contains``) happened."""
        sql = "SELECT MAX(ts) FROM ohm_events WHERE kind=?"
        params: list[Any] = [kind]
        if data_contains is not None:
            sql += " AND instr(COALESCE(data, ''), ?) > 0"
            params.append(data_contains)
        row = self._one(sql, params, action="look up the last event of this kind")
        return _opt_float(row[0]) if row else None

    def count_open_bugs(self) -> int:
        marks = ",".join("?" * len(OPEN_STATUSES))
        row = self._one(f"SELECT COUNT(*) FROM bugs WHERE status IN ({marks})", OPEN_STATUSES)
        return int(row[0]) if row else 0

    # -- tallies for metrics (counters that survive a restart of ohm) -------------
    def crash_tally(self) -> list[tuple[str, str, int]]:
        """``(agent_type, error_type, crashes)`` over the kept history ("" when unknown)."""
        rows = self._rows(
            "SELECT agent_type, COALESCE(error_type, ''), COUNT(*) FROM agent_crashes "
            "GROUP BY 1, 2",
            action="count crashes",
        )
        return [(str(r[0]), str(r[1]), int(r[2])) for r in rows]

    def respawn_tally(self) -> list[tuple[str, bool, int]]:
        """``(agent_type, ok, respawns)``: the type from the crash respawned, else the task key."""
        rows = self._rows(
            "SELECT COALESCE(c.agent_type, CASE WHEN r.task_key LIKE 'type:%' "
            "THEN substr(r.task_key, 6) END, ''), r.ok, COUNT(*) "
            "FROM ohm_respawns r LEFT JOIN agent_crashes c ON c.crash_id = r.crash_id "
            "GROUP BY 1, 2",
            action="count respawns",
        )
        return [(str(r[0]), bool(r[1]), int(r[2])) for r in rows]

    def event_tally(self, kind: str) -> list[tuple[str, int]]:
        """``(agent_type, events)`` of one kind (e.g. ``gave_up``)."""
        rows = self._rows(
            "SELECT COALESCE(agent_type, ''), COUNT(*) FROM ohm_events WHERE kind = ? GROUP BY 1",
            (kind,),
            action="count events",
        )
        return [(str(r[0]), int(r[1])) for r in rows]

    def open_bug_tally(self) -> dict[str, int]:
        """Open bugs by priority."""
        marks = ",".join("?" * len(OPEN_STATUSES))
        rows = self._rows(
            f"SELECT priority, COUNT(*) FROM bugs WHERE status IN ({marks}) GROUP BY 1",
            OPEN_STATUSES,
            action="count open bugs",
        )
        return {str(r[0]): int(r[1]) for r in rows}

    # -- retention -------------------------------------------------------------
    _PRUNE_TARGETS = (
        ("health_checks", "ts"),
        ("agent_crashes", "crashed_ts"),
        ("ohm_events", "ts"),
        ("ohm_respawns", "ts"),
        ("ohm_seen", "last_seen_ts"),
        ("ohm_acks", "ended_ts"),  # open acks (ended_ts NULL) are never pruned
    )

    def prune(self, *, older_than: float, max_seconds: float = 0.5, batch: int = 5000) -> int:
        """Delete history older than ``older_than`` in batches; stops after ``max_seconds``.

        Bugs are kept forever. Each batch is its own short transaction so other
        writers are not held up; at least one batch runs so repeated passes progress.
        """
        started = time.monotonic()
        deleted = 0
        for table, column in self._PRUNE_TARGETS:
            while True:
                if deleted and time.monotonic() - started >= max_seconds:
                    return deleted
                sql = (
                    f"DELETE FROM {table} WHERE rowid IN (SELECT rowid FROM {table} "
                    f"WHERE {column} < ? LIMIT ?)"
                )

                def run(conn: sqlite3.Connection, sql: str = sql) -> int:
                    return int(conn.execute(sql, (older_than, batch)).rowcount)

                n = self._write(run, f"prune {table}")
                deleted += n
                if n < batch:
                    break
        return deleted

    def integrity_ok(self) -> bool:
        try:
            row = self._one("PRAGMA quick_check", action="check the database")
        except StoreError as exc:
            if exc.kind in ("corrupt", "io"):
                return False
            raise
        return row is not None and str(row[0]).lower() == "ok"

    # -- acknowledgements --------------------------------------------------------
    _ACK_COLS = (
        "ack_id, issue_id, issue_type, acked_by, acked_ts, until_ts, severity, count, "
        "crash_id, error, ended_ts, end_reason, missing_since_ts"
    )

    @staticmethod
    def _ack_row(r: Sequence[Any]) -> tuple[Ack, float | None]:
        ack = Ack(
            ack_id=int(r[0]),
            issue_id=str(r[1]),
            issue_type=str(r[2]),
            by=str(r[3]),
            acked_at=float(r[4]),
            until=_opt_float(r[5]),
            severity_at_ack=str(r[6]),
            count_at_ack=int(r[7]),
            crash_id_at_ack=_opt_int(r[8]),
            error_at_ack=str(r[9] or ""),
            ended_at=_opt_float(r[10]),
            end_reason=r[11],
        )
        return ack, _opt_float(r[12])

    def add_ack(
        self,
        *,
        issue_id: str,
        issue_type: str,
        by: str,
        until: float | None,
        severity: str,
        count: int,
        crash_id: int | None,
        error: str,
        now: float | None = None,
    ) -> Ack:
        """Record an ack; an open ack of the same issue is replaced (ended as "re-acknowledged")."""
        at = _now() if now is None else now

        def run(conn: sqlite3.Connection) -> int:
            conn.execute(
                "UPDATE ohm_acks SET ended_ts=?, end_reason='re-acknowledged' "
                "WHERE issue_id=? AND ended_ts IS NULL",
                (at, issue_id),
            )
            cur = conn.execute(
                "INSERT INTO ohm_acks (issue_id, issue_type, acked_by, acked_ts, until_ts, "
                "severity, count, crash_id, error) VALUES (?,?,?,?,?,?,?,?,?)",
                (issue_id, issue_type, by, at, until, severity, count, crash_id, _clip(error, 500)),
            )
            return int(cur.lastrowid or 0)

        ack_id = self._write(run, "record an acknowledgement")
        return Ack(
            ack_id=ack_id,
            issue_id=issue_id,
            issue_type=issue_type,
            by=by,
            acked_at=at,
            until=until,
            severity_at_ack=severity,
            count_at_ack=count,
            crash_id_at_ack=crash_id,
            error_at_ack=_clip(error, 500) or "",
        )

    def open_acks(self) -> list[tuple[Ack, float | None]]:
        """Acks not ended yet (expired ones included: the caller ends them), with the
        time each one's issue was first seen missing (``None`` while present)."""
        rows = self._rows(
            f"SELECT {self._ACK_COLS} FROM ohm_acks WHERE ended_ts IS NULL ORDER BY ack_id",
            action="list acknowledgements",
        )
        return [self._ack_row(r) for r in rows]

    def list_acks(self, *, limit: int = 100) -> list[Ack]:
        """Every ack, newest first (ended ones too: they are the history of who knew what)."""
        rows = self._rows(
            f"SELECT {self._ACK_COLS} FROM ohm_acks ORDER BY ack_id DESC LIMIT ?",
            (int(limit),),
            action="list acknowledgements",
        )
        return [self._ack_row(r)[0] for r in rows]

    def end_ack(self, ack_id: int, reason: str, *, now: float | None = None) -> bool:
        """End one open ack; False when it had ended already (another monitor did it)."""
        at = _now() if now is None else now

        def run(conn: sqlite3.Connection) -> bool:
            cur = conn.execute(
                "UPDATE ohm_acks SET ended_ts=?, end_reason=? WHERE ack_id=? AND ended_ts IS NULL",
                (at, reason, ack_id),
            )
            return cur.rowcount > 0

        return self._write(run, "end an acknowledgement")

    def set_ack_missing(self, ack_id: int, since: float | None) -> None:
        """Note when an acked issue was first found gone (``None``: it is back)."""

        def run(conn: sqlite3.Connection) -> None:
            conn.execute("UPDATE ohm_acks SET missing_since_ts=? WHERE ack_id=?", (since, ack_id))

        self._write(run, "update an acknowledgement")
