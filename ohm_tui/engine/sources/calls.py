"""Era 3: THE reader of ``data/claude_invocations.db`` (one row per ``claude`` CLI call),
for both of its uses: a session's health (``recent``: the newest calls and every call
still open, as ``Invocation`` rows) and the spend (``invocations.py`` aggregates in SQL
over a connection from here, so a year of calls is never loaded).

Opening is read-only (``mode=ro``: never creates the file, never writes), with a short
busy timeout, and every failure is one ``InvocationsError`` whose ``kind`` says what
is wrong (missing, locked, corrupt, no_table, other): callers show a degraded status,
never a traceback. Times in this table are naive **UTC** ISO (unlike
``agent_lifecycle``'s naive local ones); they become UTC epoch floats here.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

FILE = "claude_invocations.db"  # in the state directory, beside orchestrator.db
TABLE = "claude_invocations"
BUSY_TIMEOUT = 0.5  # the writer's commits are one short UPDATE; a check must not wait long
RECENT_ROWS = 2000  # newest calls read per check
OPEN_ROWS = 500  # calls without completed_at read per check, however old
FAILED = ("error", "timeout")


class InvocationsError(Exception):
    """``claude_invocations.db`` cannot be read.

    ``kind``: missing, locked, corrupt, no_table, other.
    """

    def __init__(self, path: Path, problem: str, kind: str = "other") -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem
        self.kind = kind


def classify(path: Path, exc: sqlite3.Error) -> InvocationsError:
    """A SQLite error as the problem people read (locked, corrupt, other)."""
    text = str(exc)
    low = text.lower()
    if "locked" in low or "busy" in low:
        return InvocationsError(
            path, "database is locked by another process (figures return once it is free)", "locked"
        )
    if "not a database" in low or "malformed" in low or "corrupt" in low:
        return InvocationsError(path, f"not a readable SQLite database ({text})", "corrupt")
    return InvocationsError(path, text, "other")


def connect_ro(path: Path, *, immutable: bool = False) -> sqlite3.Connection:
    """A read-only, autocommit connection with a short busy timeout (``sqlite3.Error``)."""
    uri = "file:" + quote(str(path.resolve())) + "?mode=ro" + ("&immutable=1" if immutable else "")
    return sqlite3.connect(
        uri, uri=True, timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=False
    )


def open_ro(path: Path) -> sqlite3.Connection:
    """A read-only connection to ``claude_invocations.db``; ``InvocationsError`` when unusable.

    Never creates the file (``mode=ro``); a directory without write access (no
    ``-shm`` possible) is read as an immutable snapshot instead.
    """
    if not path.exists():
        raise InvocationsError(path, "file is missing", "missing")
    if not path.is_file():
        raise InvocationsError(path, "is not a file", "other")
    for immutable in (False, True):
        try:
            conn = connect_ro(path, immutable=immutable)
        except sqlite3.Error as exc:
            raise classify(path, exc) from None
        try:
            if TABLE not in {
                str(r[0]) for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
            }:
                conn.close()
                raise InvocationsError(path, f"has no {TABLE} table", "no_table")
            return conn
        except sqlite3.OperationalError as exc:
            conn.close()
            if immutable or "unable to open" not in str(exc).lower():
                raise classify(path, exc) from None
        except sqlite3.Error as exc:
            conn.close()
            raise classify(path, exc) from None
    raise InvocationsError(path, "cannot be opened", "other")  # pragma: no cover


@contextmanager
def opened(path: Path) -> Iterator[sqlite3.Connection]:
    """``open_ro`` for one read, closed after it."""
    conn = open_ro(path)
    try:
        yield conn
    finally:
        conn.close()


def table_columns(conn: sqlite3.Connection) -> set[str]:
    """The columns this version of the table has (newer writers added some)."""
    return {str(r[1]) for r in conn.execute(f"PRAGMA table_info({TABLE})")}


_COLS = (
    "invocation_id",
    "session_id",
    "agent_type",
    "status",
    "error",
    "invoked_at",
    "completed_at",
    "model",
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "duration_ms",
)


def utc_epoch(value: object) -> float | None:
    """A naive UTC ISO text (or an aware one) as epoch seconds; None when not a time."""
    if not isinstance(value, str) or not value.strip():
        return None
    s = value.strip()
    if s.endswith(("Z", "z")):
        s = s[:-1] + "+00:00"
    try:
        dt = datetime.fromisoformat(s)
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


@dataclass(slots=True)
class Invocation:
    """One ``claude`` call. Times are UTC epoch seconds."""

    invocation_id: str
    session_id: str | None
    agent_type: str
    status: str | None  # success | error | timeout; None while open
    error: str | None
    invoked_at: float | None
    completed_at: float | None
    model: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost_usd: float | None = None
    duration_ms: int | None = None

    @property
    def failed(self) -> bool:
        return self.status in FAILED


def path_in(data_dir: str | os.PathLike[str]) -> Path:
    """Where the orchestrator keeps its invocations, inside its state directory."""
    return Path(data_dir).expanduser() / FILE


def _num(value: Any, kind: type) -> Any:
    try:
        return None if value is None else kind(value)
    except (TypeError, ValueError):
        return None


def _row(r: sqlite3.Row, cols: set[str]) -> Invocation:
    def get(name: str) -> Any:
        return r[name] if name in cols else None

    return Invocation(
        invocation_id=str(get("invocation_id")),
        session_id=None if get("session_id") is None else str(get("session_id")),
        agent_type=str(get("agent_type") or "unknown"),
        status=None if get("status") is None else str(get("status")),
        error=None if get("error") is None else str(get("error")),
        invoked_at=utc_epoch(get("invoked_at")),
        completed_at=utc_epoch(get("completed_at")),
        model=None if get("model") is None else str(get("model")),
        input_tokens=_num(get("input_tokens"), int),
        output_tokens=_num(get("output_tokens"), int),
        cost_usd=_num(get("cost_usd"), float),
        duration_ms=_num(get("duration_ms"), int),
    )


def _recent(conn: sqlite3.Connection, rows: int) -> list[Invocation]:
    cols = table_columns(conn)
    if not cols:
        raise sqlite3.OperationalError(f"no {TABLE} table")
    select = ", ".join(["rowid AS _rid", *(c for c in _COLS if c in cols)])
    found: dict[int, Invocation] = {}
    q = f"SELECT {select} FROM {TABLE}"
    for r in conn.execute(f"{q} ORDER BY rowid DESC LIMIT ?", (rows,)):
        found[int(r["_rid"])] = _row(r, cols)
    if "completed_at" in cols:
        for r in conn.execute(
            f"{q} WHERE completed_at IS NULL ORDER BY rowid DESC LIMIT ?", (OPEN_ROWS,)
        ):
            found.setdefault(int(r["_rid"]), _row(r, cols))
    return [found[k] for k in sorted(found)]


class CallsReader:
    """The calls a check reads, over one connection kept between checks (reopened after
    any failure). ``problem`` is the degraded status: ``None`` when the last read worked."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.problem: InvocationsError | None = None
        self._conn: sqlite3.Connection | None = None

    def recent(self, rows: int = RECENT_ROWS) -> list[Invocation]:
        """The newest ``rows`` calls plus every call still open, oldest first.
        Raises ``InvocationsError`` (and remembers it as ``problem``)."""
        try:
            if self._conn is None:
                self._conn = open_ro(self.path)
                self._conn.row_factory = sqlite3.Row
            calls = _recent(self._conn, rows)
        except (InvocationsError, sqlite3.Error) as exc:
            self.close()
            err = exc if isinstance(exc, InvocationsError) else classify(self.path, exc)
            self.problem = err
            raise err from None
        self.problem = None
        return calls

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
