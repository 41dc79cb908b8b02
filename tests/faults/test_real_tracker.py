"""ohm's bugs in the real tracker: a real child process plays the tracker and the
orchestrator's pickup, with their own code paths (``datetime.now().isoformat()``,
``datetime.fromisoformat`` subtraction, the open High/Critical query), under ``TZ``
far from UTC. ohm's bugs must be found by that query, survive its status update,
have their tickets where it looks and in its header format, and never take the
number of a ticket that exists."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from tests.faults.kit import MonitorFactory

# The tracker's side: what its pickup query returns, then its status update.
TRACKER = r"""
import json, sqlite3, sys
from datetime import datetime
db, number = sys.argv[1], int(sys.argv[2])
conn = sqlite3.connect(db)
conn.row_factory = sqlite3.Row
rows = [dict(r) for r in conn.execute(
    "SELECT * FROM bugs WHERE status = 'open' AND priority IN ('Critical', 'High') "
    "ORDER BY created_at DESC")]
now = datetime.now().isoformat()
created = conn.execute("SELECT created_at FROM bugs WHERE bug_number = ?", (number,)).fetchone()[0]
ms = int((datetime.fromisoformat(now) - datetime.fromisoformat(created)).total_seconds() * 1000)
conn.execute("UPDATE bugs SET status = ?, updated_at = ?, resolved_at = ?, time_to_resolve_ms = ? "
             "WHERE bug_number = ?", ("resolved", now, now, ms, number))
conn.commit()
print(json.dumps({"open_high": rows, "time_to_resolve_ms": ms}))
"""

# The tracker once numbered past its table: BUG-002.md exists with no row.
FOREIGN_TICKET = "# BUG-002: Spec loop hangs\n\n**Status**: \U0001f534 Open\n**Priority**: Low\n"


def _run_tracker(db: Path, number: int) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-c", TRACKER, str(db), str(number)],
        check=True,
        capture_output=True,
        text=True,
        timeout=30,
    ).stdout
    result: dict[str, Any] = json.loads(out)
    return result


def _seconds_ago(local_iso: str) -> float:
    return (datetime.now() - datetime.fromisoformat(local_iso)).total_seconds()


def test_ohm_bugs_live_in_the_real_tracker(ohm: MonitorFactory, data_dir: Path) -> None:
    root = data_dir.parent
    (root / "tickets").mkdir()
    (root / "tickets" / "BUG-002.md").write_text(FOREIGN_TICKET)
    mon = ohm()
    mon.check()  # creates the database (and the tracker's table, absent so far)
    with sqlite3.connect(mon.config.database_path) as conn:  # the tracker's own first bug
        now = datetime.now().isoformat()
        conn.execute(
            "INSERT INTO bugs (bug_number, title, description, priority, status, reporter, "
            "created_at, updated_at, ticket_file_path) VALUES (1, 'old', 'd', 'Low', 'open', "
            "'assistant', ?, ?, 'tickets/BUG-001.md')",
            (now, now),
        )
    bug = mon.file_bug("Architect crashes at import", "High", "ImportError: SkillNames")
    assert bug.bug_number == 3  # 2 is taken by a ticket file
    assert (root / "tickets" / "BUG-002.md").read_text() == FOREIGN_TICKET
    assert not (data_dir / "tickets").exists()

    ticket = (root / "tickets" / "BUG-003.md").read_text(encoding="utf-8").splitlines()
    assert ticket[:3] == [
        "# BUG-003: Architect crashes at import",
        "",
        "**Status**: \U0001f534 Open",
    ]
    assert ticket[3] == "**Priority**: High"
    assert ticket[4].startswith("**Created**: ")
    assert 0 <= _seconds_ago(ticket[4].removeprefix("**Created**: ")) < 60

    result = _run_tracker(mon.config.database_path, 3)
    (row,) = [r for r in result["open_high"] if r["bug_number"] == 3]
    assert (row["status"], row["priority"], row["assigned_to"]) == (
        "open",
        "High",
        "code_developer",
    )
    assert row["ticket_file_path"] == "tickets/BUG-003.md"
    for column in ("created_at", "updated_at"):
        assert datetime.fromisoformat(row[column]).tzinfo is None, row[column]
        assert 0 <= _seconds_ago(row[column]) < 60, row[column]
    assert 0 <= result["time_to_resolve_ms"] < 60_000

    assert mon.bug(3).status == "resolved"
    mon.close_bug(3)
    text = (root / "tickets" / "BUG-003.md").read_text(encoding="utf-8")
    assert "**Status**: \u26ab Closed" in text
    with sqlite3.connect(mon.config.database_path) as conn:
        (closed_at,) = conn.execute("SELECT closed_at FROM bugs WHERE bug_number = 3").fetchone()
    assert datetime.fromisoformat(closed_at).tzinfo is None and 0 <= _seconds_ago(closed_at) < 60
