"""Synthetic history for figures 6 and 8: crash rows and bugs in a database made by ``Store``.

Crash rows are bulk-loaded with SQL into a database that ``Store`` created, rather
than recorded one at a time, which would take minutes for a million rows. They look
like real ones (type, message, a short traceback, fingerprint, log file, command)
and are already handled (respawned, filed under one of 1,000 bugs, ``fix_state = 'done'``):
nothing for a monitor to act on.
Bugs go through ``Store.insert_bug``. ``python -m bench.history DB N SPAN`` fills a
database in a separate process, so the bench can do it while it waits on peers.
"""

from __future__ import annotations

import sqlite3
import sys
import time
from pathlib import Path

from ohm_tui.engine.store import Store

ERRORS = [
    ("ImportError", "cannot import name 'SkillNames' from 'coffee_maker.autonomous.skill_loader'"),
    ("RuntimeError", "agent lost its worktree lock"),
    ("TimeoutError", "LLM request timed out after 600 s"),
    ("KeyError", "'priority_number'"),
    ("ExitCode", "exited with code 1"),
]
TYPES = ["architect", "code_developer", "project_manager", "code-reviewer", "assistant"]


def _trace(error_type: str, message: str) -> str:
    return (
        "Traceback (most recent call last):\n"
        '  File "/srv/orch/coffee_maker/autonomous/agent.py", line 88, in run\n'
        "    self.step()\n"
        '  File "/srv/orch/coffee_maker/autonomous/agent.py", line 142, in step\n'
        "    result = self.skill.execute(task)\n"
        f"{error_type}: {message}\n"
    )


def fill_crashes(db: Path, n: int, *, newest: float, span: float) -> None:
    """``n`` crash rows spread evenly over ``[newest - span, newest]``, oldest first.

    The schema comes from ``Store``; the rows come from one ``INSERT ... SELECT``
    over a counter, in C, with the secondary indexes rebuilt afterwards (the way a
    bulk load is done): a million rows take ~15 s this way, minutes row by row.
    """
    Store(db).close()  # tables, indexes, schema version: exactly as ohm makes them
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = OFF")
        conn.execute("PRAGMA cache_size = -200000")
        indexes = conn.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' "
            "AND tbl_name = 'agent_crashes' AND sql IS NOT NULL"
        ).fetchall()
        for name, _ in indexes:
            conn.execute(f"DROP INDEX {name}")
        conn.execute("BEGIN")
        conn.execute(_FILL_SQL, {"n": n, "oldest": newest - span, "step": span / max(1, n)})
        conn.execute("COMMIT")
        for _, sql in indexes:
            conn.execute(sql)
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()


_TYPES_SQL = " ".join(f"WHEN {i} THEN '{t}'" for i, t in enumerate(TYPES))
_ERRORS_SQL = " ".join(f"WHEN {i} THEN '{e}'" for i, (e, _) in enumerate(ERRORS))
_FILL_SQL = f"""
WITH RECURSIVE seq(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM seq WHERE i < :n - 1),
r AS (
    SELECT i, :oldest + i * :step AS ts, 100000 + i AS pid,
           CASE i % {len(TYPES)} {_TYPES_SQL} END AS atype,
           CASE (i * 31) % {len(ERRORS)} {_ERRORS_SQL} END AS etype
    FROM seq
)
INSERT INTO agent_crashes (agent_pid, agent_type, task_id, crashed_at, error_type,
    error_message, stack_trace, respawned, bug_reported, bug_number, crashed_ts, agent_key,
    exit_code, root_cause, related_files, fingerprint, log_excerpt, log_file, command_text,
    cwd, source, action_taken, fix_state)
SELECT pid, atype, 'task-' || (i % 5000),
    strftime('%Y-%m-%dT%H:%M:%f+00:00', ts, 'unixepoch'), etype,
    'the agent failed in skill execution (case ' || (i % 97) || ')',
    'Traceback (most recent call last):' || char(10)
        || '  File "/srv/orch/coffee_maker/autonomous/agent.py", line 88, in run' || char(10)
        || '    self.step()' || char(10) || etype || ': the agent failed' || char(10),
    1, 1, 1 + i % 1000, ts, pid || '@' || CAST(ts AS INTEGER), 1, etype || ' in skill execution',
    '["coffee_maker/autonomous/agent.py"]', 'fp-' || etype || '-' || atype, NULL,
    '/srv/orch/data/logs/' || atype || '-task-' || (i % 5000) || '-' || pid || '.log',
    'poetry run ' || atype || ' --task task-' || (i % 5000), '/srv/orch', 'real',
    'respawned 1/3', 'done'
FROM r
"""


def fill_bugs(db: Path, n: int, *, now: float) -> None:
    """``n`` bugs through ``Store.insert_bug`` (numbering, side table and all)."""
    store = Store(db)
    try:
        with store.transaction():
            for i in range(n):
                err = ERRORS[i % len(ERRORS)]
                store.insert_bug(
                    title=f"{TYPES[i % len(TYPES)]} crashes with {err[0]} (#{i})",
                    description=f"{err[0]}: {err[1]}",
                    priority=("Critical", "High", "Medium", "Low")[i % 4],
                    status="open" if i % 3 else "closed",
                    category="crash",
                    assigned_to="code_developer",
                    reproduction_steps=["start the agent", "wait"],
                    root_cause=f"{err[0]} in skill execution",
                    related_files=["coffee_maker/autonomous/agent.py"],
                    metadata={"bench": True},
                    fingerprint=f"bug-fp-{i}",
                    issue_type="agent_crash",
                    error_logs=err[1],
                    stack_trace=_trace(*err),
                    now=now - (n - i) * 60.0,
                )
    finally:
        store.close()


def main(argv: list[str]) -> int:
    db, n, span = Path(argv[0]), int(argv[1]), float(argv[2])
    fill_crashes(db, n, newest=time.time() - 60, span=span)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
