"""Era 3: ``data/claude_invocations.db``, one row per ``claude`` CLI call, as a
session's health needs it: the newest calls and every call still open.

A small query module (cost and tokens are read by ``invocations.py``). Times in
this table are naive **UTC** ISO (unlike ``agent_lifecycle``'s naive local
ones); they become UTC epoch floats here.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ohm_tui.engine.sources import sqlite as db

FILE = "claude_invocations.db"
TABLE = "claude_invocations"
RECENT_ROWS = 2000  # newest calls read per check
OPEN_ROWS = 500  # calls without completed_at read per check, however old
FAILED = ("error", "timeout")

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


def path_in(data_dir: Path) -> Path:
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


def recent(conn: sqlite3.Connection, rows: int = RECENT_ROWS) -> list[Invocation]:
    """The newest ``rows`` calls plus every call still open, oldest first.
    Raises ``sqlite3.Error``."""
    cols = set(db.columns(conn, TABLE))
    if not cols:
        raise sqlite3.OperationalError(f"no {TABLE} table")
    select = ", ".join(["rowid AS _rid", *(c for c in _COLS if c in cols)])
    found: dict[int, Invocation] = {}
    for r in conn.execute(f"SELECT {select} FROM {TABLE} ORDER BY rowid DESC LIMIT ?", (rows,)):
        found[int(r["_rid"])] = _row(r, cols)
    if "completed_at" in cols:
        for r in conn.execute(
            f"SELECT {select} FROM {TABLE} WHERE completed_at IS NULL ORDER BY rowid DESC LIMIT ?",
            (OPEN_ROWS,),
        ):
            found.setdefault(int(r["_rid"]), _row(r, cols))
    return [found[k] for k in sorted(found)]
