"""Retention: deleting old history in short batches (bugs are kept forever)."""

from __future__ import annotations

import sqlite3
import time

from ohm_tui.engine.store.database import Repository


class RetentionRepository(Repository):
    """A repository over the one ``Database`` it is given."""

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
