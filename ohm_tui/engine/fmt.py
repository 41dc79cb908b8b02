"""How numbers, times and counts read to people: one module for both faces.

The CLI and the console used to format the same values their own way ("12.4 MB"
in one, "11.8 MiB" in the other; "never" and "-" for the same unknown time).
Both now call these, so operators read the same thing wherever they look.
Plain text only: no Rich, no Textual (the engine never imports the UI).
"""

from __future__ import annotations

import functools
import re
from datetime import datetime, timedelta

import humanize

from ohm_tui.engine import timeutil
from ohm_tui.engine.model import (
    LIVE,
    AgentView,
    CrashRow,
    Lifecycle,
    ended_text,
    format_bug_number,
    is_process_id,
)

DASH = "-"  # an unknown value in a table cell
UNKNOWN = "unknown"  # an unknown value in a sentence ("last poll unknown")


def plural(n: int, noun: str) -> str:
    """``noun`` in the form that goes with ``n``: ``crash``/``crashes``, ``entry``/``entries``."""
    if n == 1:
        return noun
    head, _, last = noun.rpartition(" ")  # "stale entry": the last word takes the plural
    if last.endswith("y") and last[-2:-1] not in ("a", "e", "i", "o", "u", ""):
        last = last[:-1] + "ies"  # entry -> entries, but day -> days
    elif last.endswith(("s", "sh", "ch", "x", "z")):
        last += "es"
    else:
        last += "s"
    return f"{head} {last}" if head else last


def count(n: int, noun: str) -> str:
    """``"1 crash"``, ``"24 crashes"``, ``"0 zombies"``: the one way ohm counts things."""
    return f"{n} {plural(n, noun)}"


def article(word: str) -> str:
    """``word`` with its indefinite article: ``"an agent_crash"``, ``"a zombie"``."""
    return f"{'an' if word[:1].lower() in 'aeiou' else 'a'} {word}"


def ago(ts: float | None, at: float | None = None) -> str:
    """``"3 minutes ago"`` for an epoch time; ``-`` when unknown."""
    age = timeutil.age(ts, at)
    return DASH if age is None else _ago(int(age))


def seconds_ago(age: float | None) -> str:
    """``"89 minutes ago"`` for an age in seconds; ``unknown`` when it is not known."""
    return UNKNOWN if age is None else _ago(int(max(0.0, age)))


@functools.lru_cache(maxsize=8192)
def _ago(seconds: int) -> str:
    # Cached: a thousand rows a frame, mostly ages seen a moment ago.
    return str(humanize.naturaltime(timedelta(seconds=seconds)))


def duration(seconds: float | None) -> str:
    """``"4 minutes"`` for a length of time (to the whole second); ``-`` when unknown."""
    return DASH if seconds is None else _delta(int(max(0.0, seconds)))


@functools.lru_cache(maxsize=8192)
def _delta(seconds: int) -> str:
    return str(humanize.naturaldelta(timedelta(seconds=seconds)))


@functools.lru_cache(maxsize=8192)
def size(n_bytes: int | None) -> str:
    """``"12.3 MiB"`` (powers of 1024, as ``top`` and ``htop`` count memory); ``-`` when unknown."""
    return DASH if n_bytes is None else str(humanize.naturalsize(n_bytes, binary=True))


def percent(value: float | None, digits: int = 1) -> str:
    """``"12.5%"``; ``-`` when unknown."""
    return DASH if value is None else f"{value:.{digits}f}%"


def rate(value: float | None) -> str:
    """A 0..1 ratio as ``"75%"``; ``n/a`` when nothing was tried yet."""
    return "n/a" if value is None else f"{value * 100:.0f}%"


def local_iso(ts: float) -> str:
    """Local time with its offset, to the second: unambiguous in a journal."""
    return datetime.fromtimestamp(ts).astimezone().isoformat(timespec="seconds")


def local_time(ts: float) -> str:
    """``"2025-10-19 19:43:20"``, local: a moment on a detail screen."""
    return datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


def clock(ts: float) -> str:
    """``"19:43:20"``, local: a moment of today, in a narrow place."""
    return datetime.fromtimestamp(ts).strftime("%H:%M:%S")


# Agents whose process is there: only these have an uptime.
LIVE_STATUSES = LIVE  # model.lifecycle


def agent_pid(agent: AgentView) -> str:
    """The PID column, in both faces. A session (era 3) is a thread of the orchestrator:
    its "PID" is a 15-digit thread id that names no process, so it reads ``session``."""
    return "session" if agent.source == "session" else str(agent.pid)


def agent_label(agent_type: str | None, pid: int | None) -> str:
    """``architect [4242]``; a session's thread id names no process: ``architect (session)``."""
    if pid is not None and not is_process_id(pid):
        return f"{agent_type or 'agent'} (session)"
    if agent_type and pid is not None:
        return f"{agent_type} [{pid}]"
    return agent_type or (DASH if pid is None else f"[{pid}]")


def agent_status(agent: AgentView, now: float) -> str:
    """An agent's status as people read it, in both faces: ``respawning in 4s``, ``given up``."""
    if agent.status == Lifecycle.RESPAWNING and agent.next_respawn_at is not None:
        return f"respawning in {max(0, round(agent.next_respawn_at - now))}s"
    label = agent.status.replace("_", " ")
    ended = ended_text(agent.exit_code) if agent.status not in LIVE_STATUSES else None
    return f"{label} ({ended})" if ended else label  # how a run ended: "crashed (exit 1)"


def agent_uptime(agent: AgentView, now: float) -> float | None:
    """Seconds a live agent has run; ``None`` for one that is not running (no uptime)."""
    if agent.status not in LIVE_STATUSES:
        return None
    return timeutil.age(agent.started_at, now)


def crash_action(crash: CrashRow) -> str:
    """What ohm did about a crash, in both faces: ``respawned 2/3``, ``gave up, bug BUG-004``.

    Raw text (an ``action_taken`` may quote a command): each face escapes it its own way.
    """
    parts: list[str] = []
    if crash.action_taken:
        parts.append(crash.action_taken)
    elif crash.respawned:
        parts.append("respawned")
    if crash.bug_number is not None:
        label = f"bug {format_bug_number(crash.bug_number)}"
        if not any(label in part for part in parts):
            parts.append(label)
    return ", ".join(parts) or DASH


_LOG_PREFIX = re.compile(
    r"^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(?:[,.]\d+)?\s*(?:-\s*(?:[\w.\-]+\s+-\s+)?)?"
)


def log_message(line: str) -> str:
    """A log line without its ``asctime - name - `` prefix, for a narrow column."""
    return _LOG_PREFIX.sub("", line, count=1)
