"""Turning engine models into text for people and JSON for scripts.

Everything that came from an agent (log lines, messages, command lines) goes
through ``clean`` first: a log can hold terminal escape sequences that would
otherwise move the cursor or retitle the operator's terminal.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime, timedelta
from typing import Any

import humanize

from ohm_tui.engine import timeutil
from ohm_tui.engine.models import format_bug_number

DASH = "-"


def clean(text: object) -> str:
    """Untrusted text made safe to print on one line (or ``-`` when empty)."""
    if text is None or text == "":
        return DASH
    from ohm_tui.engine.logparse import sanitize  # the engine owns what "safe" means

    return " ".join(sanitize(str(text)).split()) or DASH


def clean_block(text: object) -> str:
    """Untrusted multi-line text (a stack trace) made safe to print, lines kept."""
    if text is None or text == "":
        return DASH
    from ohm_tui.engine.logparse import sanitize

    return str(sanitize(str(text))).rstrip("\n")


def ago(ts: float | None, at: float | None = None) -> str:
    """``"3 minutes ago"`` for an epoch time, ``-`` when unknown."""
    if ts is None:
        return DASH
    ref = timeutil.now() if at is None else at
    return str(humanize.naturaltime(timedelta(seconds=max(0.0, ref - ts))))


def seconds_ago(age: float | None) -> str:
    """``"89 minutes ago"`` for an age in seconds."""
    if age is None:
        return "never"
    return str(humanize.naturaltime(timedelta(seconds=max(0.0, age))))


def duration(seconds: float | None) -> str:
    """``"4 minutes"`` for a length of time."""
    if seconds is None:
        return DASH
    return str(humanize.naturaldelta(timedelta(seconds=max(0.0, seconds))))


def size(n_bytes: int | None) -> str:
    """``"12.4 MB"``."""
    return DASH if n_bytes is None else str(humanize.naturalsize(n_bytes))


def percent(value: float | None, digits: int = 1) -> str:
    return DASH if value is None else f"{value:.{digits}f}%"


def rate(value: float | None) -> str:
    """A 0..1 ratio as a percentage (``respawn_success_rate``)."""
    return "n/a" if value is None else f"{value * 100:.0f}%"


def bug_label(number: int | None) -> str:
    return DASH if number is None else format_bug_number(number)


def local_iso(ts: float) -> str:
    """Local time with its offset, to the second: unambiguous in a journal."""
    return datetime.fromtimestamp(ts).astimezone().isoformat(timespec="seconds")


def agent_label(agent_type: str | None, pid: int | None) -> str:
    if agent_type and pid is not None:
        return f"{clean(agent_type)} [{pid}]"
    if agent_type:
        return clean(agent_type)
    return DASH if pid is None else f"[{pid}]"


def emit(text: str = "") -> None:
    """One line (or block) to stdout, flushed so journals show it live."""
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def emit_json(data: Any) -> None:
    """Exactly one JSON document on stdout."""
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
    sys.stdout.flush()
