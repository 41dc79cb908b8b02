"""SQLite rows to records and back; error classification; bounded text."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from typing import Any

from ohm_tui.engine.model import PRIORITY_RANK, CrashRow, Event
from ohm_tui.engine.store.base import MAX_TEXT


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
    "CASE b.priority "
    + " ".join(f"WHEN '{p}' THEN {rank}" for p, rank in PRIORITY_RANK.items())
    + f" ELSE {len(PRIORITY_RANK)} END"
)


def agent_dict(r: Sequence[Any]) -> dict[str, Any]:
    """An ``ohm_agents`` row as a dict (``argv`` a list of strings)."""
    d = dict(zip(_AGENT_COLS, r, strict=True))
    d["argv"] = [str(x) for x in _json_list(d["argv"])]
    return d
