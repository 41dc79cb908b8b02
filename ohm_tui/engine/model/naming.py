"""Identity and naming rules, once: a run's key, a task's respawn key, a safe file-name piece."""

from __future__ import annotations

import functools
import math
import re
import shlex

_SLUG = re.compile(r"[^A-Za-z0-9_.-]+")

# Above any PID Linux hands out (pid_max is at most 2**22): a bigger "pid" is a
# thread id (an era-3 session), which names no process.
PID_LIMIT = 2**31


def is_process_id(pid: int | None) -> bool:
    """Could ``pid`` name a process? False for a session's thread id (and for 0/None)."""
    return pid is not None and 0 < pid < PID_LIMIT


def agent_key(pid: int, started_at: float | None) -> str:
    """One run of an agent: ``"<pid>@<int(started_at)>"``; PIDs alone are reused."""
    if started_at is None or not math.isfinite(started_at):
        return f"{pid}@?"
    return f"{pid}@{int(started_at)}"


def session_key(thread_id: int, started_at: float | None, row_id: int) -> str:
    """One session (era 3): its thread id and start, plus its ``agent_lifecycle`` row.
    Python reuses thread ids at once, so two sessions started in the same second
    on a recycled thread would otherwise be one run (and share each other's crashes)."""
    return f"{agent_key(thread_id, started_at)}#{row_id}"


def task_key(agent_type: str | None, task_id: str | None) -> str:
    """Respawn limits count per task; an agent without a task counts per type."""
    return f"task:{task_id}" if task_id else f"type:{agent_type or 'agent'}"


def slug(text: str | None, default: str = "agent") -> str:
    """A file-name-safe piece (task ids like ``../../etc/x`` stay inside their folder)."""
    s = _SLUG.sub("_", text or "").strip("._")[:60]
    return s or default


def split_command(text: str | None) -> list[str]:
    """A command line as argv: ``shlex.split``, or split on whitespace when its quotes
    do not balance (still something to show, and to run if it is all there is)."""
    return list(_split_command(text or ""))


@functools.lru_cache(maxsize=1024)
def _split_command(text: str) -> tuple[str, ...]:
    """Remembered (bounded): a state file is parsed again whenever it changes, and in a
    storm of deaths and respawns it changes many times a second with the same commands
    (``shlex`` was most of a 200-agent file's parse)."""
    try:
        return tuple(shlex.split(text))
    except ValueError:
        return tuple(text.split())
