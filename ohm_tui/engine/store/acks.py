"""Operators' acknowledgements (``ohm_acks``)."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from ohm_tui.engine.model import Ack
from ohm_tui.engine.store.database import Repository
from ohm_tui.engine.store.rows import _clip, _opt_float, _opt_int
from ohm_tui.engine.timeutil import now as _now


class AckRepository(Repository):
    """A repository over the one ``Database`` it is given."""

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
