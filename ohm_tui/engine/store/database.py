"""One SQLite connection shared by a process's threads: open, migrate, retry, transact."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Self
from urllib.parse import quote

from ohm_tui.engine.store.base import StoreError, T
from ohm_tui.engine.store.rows import _err_name, _is_locked
from ohm_tui.engine.store.schema import MIGRATIONS, SCHEMA_VERSION, _columns
from ohm_tui.engine.timeutil import now as _now


class Database:
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
    def open_readonly(cls, path: Path | str, **kwargs: Any) -> Self:
        """An observer's store: reads work, every write raises ``StoreError``."""
        return cls(path, read_only=True, **kwargs)

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

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def integrity_ok(self) -> bool:
        try:
            row = self._one("PRAGMA quick_check", action="check the database")
        except StoreError as exc:
            if exc.kind in ("corrupt", "io"):
                return False
            raise
        return row is not None and str(row[0]).lower() == "ok"


class Repository:
    """One concern's queries over the shared ``Database`` it is given (it holds no
    connection of its own). The helpers below are the database's, so a repository
    reads the same whether it writes one row or many."""

    def __init__(self, db: Database) -> None:
        self.db = db

    @property
    def path(self) -> Path:
        return self.db.path

    @property
    def _bug_columns(self) -> set[str]:
        return self.db._bug_columns

    def _write(self, fn: Callable[[sqlite3.Connection], T], action: str) -> T:
        return self.db._write(fn, action)

    def _rows(
        self, sql: str, params: Sequence[Any] = (), *, action: str = "read", strict: bool = False
    ) -> list[tuple[Any, ...]]:
        return self.db._rows(sql, params, action=action, strict=strict)

    def _one(
        self, sql: str, params: Sequence[Any] = (), *, action: str = "read", strict: bool = False
    ) -> tuple[Any, ...] | None:
        return self.db._one(sql, params, action=action, strict=strict)
