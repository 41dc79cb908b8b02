"""The fixer lease: one fixer per data dir, taken over when its holder dies."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any

from ohm_tui.engine.store.database import Repository


class LeaseRepository(Repository):
    """A repository over the one ``Database`` it is given."""

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
