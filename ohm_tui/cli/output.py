"""Turning engine models into text for people and JSON for scripts.

Everything that came from an agent (log lines, messages, command lines) goes
through ``clean`` first: a log can hold terminal escape sequences that would
otherwise move the cursor or retitle the operator's terminal.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from ohm_tui.engine import fmt
from ohm_tui.engine.model import format_bug_number

DASH = fmt.DASH


def clean(text: object) -> str:
    """Untrusted text made safe to print on one line (or ``-`` when empty)."""
    if text is None or text == "":
        return DASH
    from ohm_tui.engine.sources.logtail import sanitize  # the engine owns what "safe" means

    return " ".join(sanitize(str(text)).split()) or DASH


def clean_block(text: object) -> str:
    """Untrusted multi-line text (a stack trace) made safe to print, lines kept."""
    if text is None or text == "":
        return DASH
    from ohm_tui.engine.sources.logtail import sanitize

    return str(sanitize(str(text))).rstrip("\n")


# Times, sizes and counts read the same in both faces: one formatter (engine/fmt.py).
ago = fmt.ago
seconds_ago = fmt.seconds_ago
duration = fmt.duration
size = fmt.size
percent = fmt.percent
rate = fmt.rate
local_iso = fmt.local_iso
count = fmt.count
local_time = fmt.local_time


def bug_label(number: int | None) -> str:
    return DASH if number is None else format_bug_number(number)


def agent_label(agent_type: str | None, pid: int | None) -> str:
    return fmt.agent_label(clean(agent_type) if agent_type else None, pid)


def emit(text: str = "") -> None:
    """One line (or block) to stdout, flushed so journals show it live."""
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def emit_json(data: Any) -> None:
    """Exactly one JSON document on stdout."""
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
    sys.stdout.flush()
