"""Bugs: the real tracker's ``bugs`` table plus ohm's ``ohm_bug_meta``."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Sequence
from typing import Any

from ohm_tui.engine.model import BugRow
from ohm_tui.engine.store.base import BUG_PRIORITIES, BUG_STATUSES, OPEN_STATUSES, StoreError
from ohm_tui.engine.store.database import Repository
from ohm_tui.engine.store.rows import (
    _BUG_JSON_FIELDS,
    _BUG_TIME_FIELDS,
    _BUG_WANTED,
    _META_FIELDS,
    _PRIORITY_RANK_SQL,
    _clip,
    _json_dict,
    _json_list,
    _opt_float,
)
from ohm_tui.engine.timeutil import iso_local_naive, to_epoch
from ohm_tui.engine.timeutil import now as _now


class BugRepository(Repository):
    """A repository over the one ``Database`` it is given."""

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

    def count_open_bugs(self) -> int:
        marks = ",".join("?" * len(OPEN_STATUSES))
        row = self._one(f"SELECT COUNT(*) FROM bugs WHERE status IN ({marks})", OPEN_STATUSES)
        return int(row[0]) if row else 0

    def open_bug_tally(self) -> dict[str, int]:
        """Open bugs by priority."""
        marks = ",".join("?" * len(OPEN_STATUSES))
        rows = self._rows(
            f"SELECT priority, COUNT(*) FROM bugs WHERE status IN ({marks}) GROUP BY 1",
            OPEN_STATUSES,
            action="count open bugs",
        )
        return {str(r[0]): int(r[1]) for r in rows}
