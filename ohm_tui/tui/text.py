"""The one place the console turns outside text and numbers into something to show.

Agents write whatever they like into their logs, and exception messages, command
lines and bug titles come from them too. Passed to a ``Static`` or a ``DataTable``
as a ``str``, ``[link=...]`` would become a link and ``[/]`` would raise
``MarkupError``; written raw, an ESC sequence would restyle the terminal or
(OSC 52) write the operator's clipboard. So every such string goes through
:func:`literal` (a ``rich.text.Text``, never parsed as markup) or :func:`clean`.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from rich.style import Style
from rich.text import Text

from ohm_tui.engine import fmt, timeutil
from ohm_tui.engine.sources.logtail import sanitize

# A second layer after the engine's sanitize. ESC-introduced sequences: CSI,
# OSC / DCS / SOS / PM / APC strings, and two-byte escapes.
_ESCAPES = re.compile(
    r"""
    \x1b\[[0-?]*[ -/]*[@-~]?            # CSI ... final byte
  | \x1b[\]PX^_].*?(?:\x07|\x1b\\|$)    # OSC, DCS, SOS, PM, APC ... BEL or ST
  | \x9b[0-?]*[ -/]*[@-~]?              # 8-bit CSI
  | [\x90\x9d\x98\x9e\x9f].*?(?:\x07|\x9c|$)  # 8-bit string controls
  | \x1b[ -/]*[0-~]?                     # other escapes (charset, keypad ...)
    """,
    re.VERBOSE | re.DOTALL,
)
# Remaining C0/C1 controls (tab and newline kept) and bidi overrides ("Trojan Source").
_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def clean(text: object) -> str:
    """``text`` as a plain string with every terminal control sequence removed."""
    if text is None:
        return ""
    s = text if isinstance(text, str) else str(text)
    s = sanitize(s)  # the engine's rules, shared with the CLI ...
    s = _ESCAPES.sub("", s)  # ... and the console's own, as a second layer (bidi too)
    return _CONTROLS.sub("", s)


def literal(text: object, style: str | Style = "", *, max_len: int | None = None) -> Text:
    """Untrusted text as a ``Text`` shown exactly as written (no markup, no escapes).

    ``max_len`` truncates to one line with an ellipsis, for table cells.
    """
    s = clean(text)
    if max_len is not None:
        s = one_line(s, max_len)
    # A table column narrower than the text ends it with "…" (never a silent cut).
    return Text(s, style=style, end="", overflow="ellipsis", no_wrap=max_len is not None)


def one_line(text: str, max_len: int) -> str:
    """First non-empty line of ``text``, cut to ``max_len`` characters with an ellipsis."""
    s = " ".join(text.split()) if "\n" not in text else _first_line(text)
    if len(s) > max_len:
        return s[: max(0, max_len - 1)] + "…"
    return s


def cut_words(text: str, max_len: int) -> str:
    """``text`` cut to ``max_len`` characters at a word boundary, ending in ``…``: a
    word is shown whole or not at all ("demo-3 crashed…", never "ClaudeTimeo…").
    A first word longer than the room is cut, as nothing else would show."""
    if len(text) <= max_len:
        return text
    room = max(0, max_len - 1)
    head = text[: room + 1]
    cut = head.rfind(" ")
    kept = (head[:cut] if cut > 0 else text[:room]).rstrip(" :;,.-·")
    return (kept or text[:room]) + "…"


def _first_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            return " ".join(line.split())
    return ""


# Times, sizes and counts read the same in both faces: one formatter (engine/fmt.py),
# except that the console does not count ages and uptimes up second by second (below).
exact_ago = fmt.ago
exact_seconds_ago = fmt.seconds_ago
exact_duration = fmt.duration
size = fmt.size
percent = fmt.percent
rate = fmt.rate
count = fmt.count
local_time = fmt.local_time
clock = fmt.clock
crash_action = fmt.crash_action
log_message = fmt.log_message
agent_status = fmt.agent_status
agent_pid = fmt.agent_pid
agent_label = fmt.agent_label
agent_uptime = fmt.agent_uptime


COARSE_BELOW = 60.0
"""Ages and uptimes under this many seconds are drawn as one value, "just now" and
"<1 minute", instead of "4 seconds" ticking to "6 seconds" at every frame: each tick
repainted a whole table, most of what an idle console wrote to an SSH terminal.
From a minute up the words (``2 minutes``) change once a minute or less anyway."""
JUST_NOW = "just now"
UNDER_A_MINUTE = "<1 minute"


def ago(ts: float | None, at: float | None = None) -> str:
    """``"3 minutes ago"``; ``"just now"`` under a minute (see ``COARSE_BELOW``)."""
    age = timeutil.age(ts, at)
    return JUST_NOW if age is not None and age < COARSE_BELOW else fmt.ago(ts, at)


def seconds_ago(age: float | None) -> str:
    """``"3 minutes ago"`` for an age in seconds; ``"just now"`` under a minute."""
    return JUST_NOW if age is not None and 0 <= age < COARSE_BELOW else fmt.seconds_ago(age)


def duration(seconds: float | None) -> str:
    """A clock-driven length (an uptime, time left): ``"4 minutes"``; ``"<1 minute"``
    under a minute. Fixed lengths (a histogram bucket) use ``exact_duration``."""
    if seconds is not None and 0 <= seconds < COARSE_BELOW:
        return UNDER_A_MINUTE
    return fmt.duration(seconds)


def moment(ts: float, now: float | None = None) -> str:
    """When something happened, as a clock: ``"19:43:20"`` today, else
    ``"2025-10-19 19:43:20"`` (local). Unlike "just now" it tells apart events a
    few seconds apart, and it never ticks, so an idle table is not repainted."""
    today = datetime.fromtimestamp(timeutil.now() if now is None else now).date()
    return clock(ts) if datetime.fromtimestamp(ts).date() == today else local_time(ts)


def set_border_title(widget: Any, title: str) -> None:
    """Assign a border title only when it changed: each assignment repaints the
    whole panel, and over SSH every repaint is bytes on the wire."""
    if getattr(widget, "_ohm_title", None) != title:
        widget._ohm_title = title
        widget.border_title = Text(title)
