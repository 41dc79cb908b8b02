"""The timeline (``ohm_events``)."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from ohm_tui.engine.model import Event, EventKind
from ohm_tui.engine.store.database import Repository
from ohm_tui.engine.store.rows import _EVENT_COLS, _clip, _event_row, _json_dict, _opt_float
from ohm_tui.engine.timeutil import now as _now


class EventRepository(Repository):
    """A repository over the one ``Database`` it is given."""

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

        event_id = self._write(lambda conn: _insert(conn, values), "record an event")
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

    def add_status_change(self, status: str, message: str, *, quiet: str) -> Event | None:
        """A ``status_changed`` event, only when ``status`` differs from the last one on
        record (``ohm_meta`` key ``status``). It is read and set in the write transaction
        of the insert, so two monitors on one database never both record one change.
        With none on record, ``quiet`` (a first healthy check) is no change. None when
        nothing was written."""
        at = _now()
        msg = _clip(message, 4096) or ""
        kind = str(EventKind.STATUS_CHANGED)
        values = (at, kind, msg, None, None, None, None, None, None, json.dumps({"status": status}))

        def run(conn: sqlite3.Connection) -> int:
            row = conn.execute("SELECT value FROM ohm_meta WHERE key='status'").fetchone()
            last = row[0] if row else None
            if row is None:  # a database from before ohm_meta kept it: the last event's
                row = conn.execute(
                    "SELECT data FROM ohm_events WHERE kind=? ORDER BY event_id DESC LIMIT 1",
                    (kind,),
                ).fetchone()
                last = _json_dict(row[0]).get("status") if row else None
            if status == (quiet if last is None else last):
                return 0
            conn.execute(
                "INSERT INTO ohm_meta(key, value) VALUES ('status', ?) "
                "ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                (status,),
            )
            return _insert(conn, values)

        event_id = self._write(run, "record a status change")
        if not event_id:
            return None
        return Event(event_id=event_id, ts=at, kind=kind, message=msg)

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

    def last_event_ts(self, kind: str, *, data_contains: str | None = None) -> float | None:
        """When the newest event of ``kind`` (whose data holds ``data_contains``) happened."""
        sql = "SELECT MAX(ts) FROM ohm_events WHERE kind=?"
        params: list[Any] = [kind]
        if data_contains is not None:
            sql += " AND instr(COALESCE(data, ''), ?) > 0"
            params.append(data_contains)
        row = self._one(sql, params, action="look up the last event of this kind")
        return _opt_float(row[0]) if row else None

    def event_tally(self, kind: str) -> list[tuple[str, int]]:
        """``(agent_type, events)`` of one kind (e.g. ``gave_up``)."""
        rows = self._rows(
            "SELECT COALESCE(agent_type, ''), COUNT(*) FROM ohm_events WHERE kind = ? GROUP BY 1",
            (kind,),
            action="count events",
        )
        return [(str(r[0]), int(r[1])) for r in rows]


def _insert(conn: sqlite3.Connection, values: tuple[Any, ...]) -> int:
    cur = conn.execute(
        "INSERT INTO ohm_events (ts, kind, message, agent_key, agent_pid, agent_type, "
        "task_id, crash_id, bug_number, data) VALUES (?,?,?,?,?,?,?,?,?,?)",
        values,
    )
    return int(cur.lastrowid or 0)
