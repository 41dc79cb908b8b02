"""Synthetic history for figures 6 and 8: crash rows and bugs in a database made by ``Store``.

Rows are written in bulk through the store's own connection (one transaction per
batch) rather than by recording crashes one at a time, which would take minutes for
a million rows. Their contents look like real ones: a type, a message, a short
traceback, a fingerprint, a handled fix state (nothing for a monitor to act on).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from ohm_tui.engine.store import Store
from ohm_tui.engine.timeutil import iso_utc

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


def fill_crashes(
    db: Path, n: int, *, newest: float, span: float, seed: int = 6, batch: int = 20000
) -> None:
    """``n`` crash rows spread evenly over ``[newest - span, newest]``."""
    rng = random.Random(seed)
    store = Store(db)
    try:
        sql = (
            "INSERT INTO agent_crashes (agent_pid, agent_type, task_id, crashed_at, error_type, "
            "error_message, stack_trace, respawned, bug_reported, bug_number, crashed_ts, "
            "agent_key, exit_code, root_cause, related_files, fingerprint, log_excerpt, log_file, "
            "command_text, cwd, source, action_taken, fix_state) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
        )
        step = span / max(1, n)
        traces = {e: _trace(*e) for e in ERRORS}
        done = 0
        while done < n:
            rows = []
            for i in range(done, min(n, done + batch)):
                ts = newest - span + i * step
                pid = 10000 + (i * 7919) % 3_000_000
                err = ERRORS[rng.randrange(len(ERRORS))]
                agent_type = TYPES[i % len(TYPES)]
                task = f"task-{i % 5000}"
                rows.append(
                    (
                        pid,
                        agent_type,
                        task,
                        iso_utc(ts),
                        err[0],
                        err[1],
                        traces[err],
                        1,
                        0,
                        None,
                        ts,
                        f"{pid}@{int(ts)}#{i}",
                        1,
                        f"{err[0]} in skill execution",
                        json.dumps(["coffee_maker/autonomous/agent.py"]),
                        f"fp-{ERRORS.index(err)}-{agent_type}",
                        None,
                        f"/srv/orch/data/logs/{agent_type}-{task}-{pid}.log",
                        f"poetry run {agent_type} --task {task}",
                        "/srv/orch",
                        "real",
                        "respawned",
                        "done",
                    )
                )
            with store.transaction() as conn:
                conn.executemany(sql, rows)
            done += len(rows)
    finally:
        store.close()


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
