"""Opening the orchestrator's SQLite files: read-only for reads, one short
``BEGIN IMMEDIATE`` with busy retries for the rare write-back.

A check must never write to the orchestrator's tables, so reads go through a
``mode=ro`` URI connection. Writes never alter or drop anything: they insert or
update rows, naming only columns that exist in that version's table.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar
from urllib.parse import quote

T = TypeVar("T")

BUSY_TIMEOUT = 2.0  # seconds SQLite itself waits on a lock, per attempt
WRITE_TRIES = 4


def connect_ro(path: Path) -> sqlite3.Connection:
    """A read-only connection (``sqlite3.Error`` when it cannot be opened)."""
    uri = f"file:{quote(str(Path(path).absolute()))}?mode=ro"
    conn = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    return conn


def has_table(path: Path, table: str) -> bool:
    """Does the database at ``path`` hold ``table`` (or a view of that name)? Never raises."""
    try:
        if not Path(path).is_file():
            return False
        conn = connect_ro(path)
    except (sqlite3.Error, OSError):
        return False
    try:
        row = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type IN ('table','view') AND name=?", (table,)
        ).fetchone()
        return row is not None
    except sqlite3.Error:
        return False
    finally:
        conn.close()


def columns(conn: sqlite3.Connection, table: str) -> list[str]:
    """The columns this version of ``table`` has (the orchestrator added some later)."""
    return [str(r[1]) for r in conn.execute(f'PRAGMA table_info("{table}")')]


def write(path: Path, fn: Callable[[sqlite3.Connection], T]) -> T:
    """Run ``fn`` in one ``BEGIN IMMEDIATE`` transaction, retried while the database
    is busy (the orchestrator writes in WAL mode too). Raises ``sqlite3.Error``."""
    last: sqlite3.Error | None = None
    for attempt in range(WRITE_TRIES):
        if attempt:
            time.sleep(0.05 * 2**attempt)  # backing off a busy writer, not waiting for time
        conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT, isolation_level=None)
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = fn(conn)
                conn.execute("COMMIT")
                return result
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        except sqlite3.OperationalError as exc:
            last = exc
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
        finally:
            conn.close()
    assert last is not None
    raise last
