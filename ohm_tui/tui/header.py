"""The status strip: the whole health of the orchestrator in one or two lines.

Line 1 is the status and its cause ("CRITICAL · crash storm: 24/h"), line 2 the
numbers. Each chip has a fixed slot on its own line, so the strip never jumps as
values change width, and a chip never splits: at 80 columns the least important
chip at the end of a line is cut instead.
Every colour also has words ("CRITICAL", "(frozen)", "auto-fix OFF"), so the
strip reads the same with 16 colours or ``NO_COLOR``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime

from textual.content import Content
from textual.events import Resize
from textual.widgets import Static

from ohm_tui.engine.detect import headline
from ohm_tui.engine.model import CostSummary, Snapshot
from ohm_tui.engine.sources.invocations import format_usd
from ohm_tui.tui import text

BADGE_STYLES: dict[str, str] = {
    "healthy": "bold $text-success on $success-muted",
    "degraded": "bold $text-warning on $warning-muted",
    "critical": "bold $text-error on $error-muted",
}
CAUSE_STYLES: dict[str, str] = {"degraded": "$text-warning", "critical": "bold $text-error"}
SEPARATOR = " · "
MAX_LINES = 2
MIN_CUT = 12  # narrower than this, a chip that does not fit is left out
CAUSE_SLOT = 28  # "crash storm: 24/h (+2 more)": the cause of the status, cut past this


@dataclass
class HeaderState:
    """What the strip shows besides the snapshot itself."""

    snapshot: Snapshot | None = None
    paused: bool = False
    read_only: bool = False
    auto_fix: bool = False
    demo: bool = False
    demo_dir: str | None = None  # shown whole at the end of line 1 where it fits
    freeze_threshold: float = 300.0
    errors: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Chip:
    """One item of the strip. ``slot`` is the width it takes at least (padded), so that
    a value growing from "9" to "10" moves nothing after it."""

    text: str
    style: str = ""
    slot: int = 0
    cuttable: bool = False  # long text (a cause, an error) may be cut; a number never is


Line = list[Chip]


MORE = re.compile(r" \(\+\d+ more\)$")


def cause_text(cause: str) -> str:
    """The cause cut to its slot at a word boundary, keeping its "(+2 more)" whole:
    ``demo-3 crashed… (+2 more)``, never ``demo-3 crashed: ClaudeTimeo…``."""
    if len(cause) <= CAUSE_SLOT:
        return cause
    more = MORE.search(cause)
    suffix = more.group(0) if more else ""
    head = cause[: len(cause) - len(suffix)]
    return text.cut_words(head, CAUSE_SLOT - len(suffix)) + suffix


def _status_line(state: HeaderState) -> Line:
    """Line 1: the status, why, and the console's own modes."""
    snap = state.snapshot
    out: Line = []
    if snap is None:
        out.append(Chip(" STARTING ", "bold reverse", 10))
        out.append(Chip("waiting for the first check", "$text-muted"))
    else:
        report = snap.report
        out.append(Chip(f" {report.status.upper()} ", BADGE_STYLES.get(report.status, "bold"), 10))
        cause = headline.headline(report)
        if cause:
            cut = cause_text(text.one_line(text.clean(cause), 200))
            out.append(Chip(cut, CAUSE_STYLES.get(report.status, ""), CAUSE_SLOT, True))
        acked = headline.acked_count(report)
        if acked:
            out.append(Chip(f"{acked} acked", "$text-muted", 8))
    if state.read_only:  # implies auto-fix off
        out.append(Chip("READ-ONLY", "bold reverse", 12))
    elif state.auto_fix:
        out.append(Chip("auto-fix ON", "$text-success", 12))
    else:
        out.append(Chip("auto-fix OFF", "$text-warning", 12))
    if state.paused:
        out.append(Chip("PAUSED", "bold $text-warning"))
    if state.demo:
        out.append(Chip("demo", "italic $text-muted"))
    if snap is not None and not snap.is_fixer and not state.read_only:
        out.append(Chip("watch only (another ohm fixes)", "$text-muted", cuttable=True))
    if snap is not None:  # least important: the first to be cut at 80 columns
        checked = datetime.fromtimestamp(snap.report.checked_at).strftime("%H:%M:%S")
        out.append(Chip(f"checked {checked}", "$text-muted"))
    if state.demo and state.demo_dir:  # whole or not at all (``?`` always shows it)
        out.append(Chip(f"state {state.demo_dir}", "$text-muted"))
    return out


def cost_chip(cost: CostSummary) -> Chip:
    """``$3.20/h``: spend in the last hour; words too when over budget or unreadable."""
    spent = f"{format_usd(cost.last_hour.cost_usd)}/h"
    if cost.over_budget and cost.budget_per_hour is not None:
        over = f"{spent} (over {format_usd(cost.budget_per_hour)}/h budget)"
        return Chip(over, "bold $text-error", 10, True)
    if cost.problem is not None:
        return Chip(f"{spent} (cost stale)", "$text-warning", 10, True)
    return Chip(spent, "", 10)


def _metrics_line(state: HeaderState) -> Line:
    """Line 2: the numbers, most telling first (the last ones are cut on narrow screens)."""
    snap = state.snapshot
    if snap is None:
        return []
    report = snap.report
    out: Line = []
    poll = report.orchestrator_last_poll
    if poll is None:
        out.append(Chip("poll unknown", "$text-muted", 19))
    elif poll > state.freeze_threshold:
        # Frozen is an alarm: its age is exact (a freeze threshold may be under a minute).
        out.append(Chip(f"poll {text.exact_seconds_ago(poll)} (frozen)", "bold $text-error", 19))
    else:
        out.append(Chip(f"poll {text.seconds_ago(poll)}", "", 19))
    out.append(Chip(f"{report.active_agents} active", "", 9))
    crash_style = "bold $text-error" if report.crashed_agents_last_hour else ""
    out.append(Chip(f"{text.count(report.crashed_agents_last_hour, 'crash')}/h", crash_style, 12))
    if snap.given_up:  # nothing runs their task until someone acts
        out.append(Chip(f"{snap.given_up} given up", "bold $text-error", 10))
    if snap.cost is not None:  # session agents' spend (era 3 only)
        out.append(cost_chip(snap.cost))
    bug_style = "$text-warning" if snap.open_bugs else ""
    out.append(Chip(text.count(snap.open_bugs, "open bug"), bug_style, 12))
    out.append(Chip(f"respawn ok {text.rate(report.respawn_success_rate)}", "", 15))
    return out


def chips(state: HeaderState) -> list[Line]:
    """The strip's lines of chips. Each line keeps its own chips: a chip never moves
    to another line because a value grew, it is cut at the end of its line instead."""
    lines = [_status_line(state), _metrics_line(state)]
    problems = list(state.errors) + (list(state.snapshot.errors) if state.snapshot else [])
    if problems:
        lines.append(
            [
                Chip(f"error: {text.one_line(text.clean(p), 200)}", "bold $text-error", 0, True)
                for p in problems
            ]
        )
    return [line for line in lines if line]


def max_lines(state: HeaderState) -> int:
    """Two lines; a third only while there is an engine error to show."""
    has_error = bool(state.errors) or bool(state.snapshot and state.snapshot.errors)
    return MAX_LINES + 1 if has_error else MAX_LINES


def pack(lines: list[Line], width: int, max_lines: int = MAX_LINES) -> Content:
    """Lay each line's chips left to right in their slots; never wrap one into the next
    line. A chip that does not fit ends its line: long text is cut to the room left,
    at a word boundary (unless under ``MIN_CUT``), a number or a word is left out whole."""
    width = max(20, width)
    assembled: list[str | tuple[str, str]] = []
    for number, line in enumerate(lines[:max_lines]):
        if number:
            assembled.append("\n")
        used = 0
        for index, chip in enumerate(line):
            sep = len(SEPARATOR) if index else 0
            last = index == len(line) - 1
            shown = chip.text if last else chip.text.ljust(chip.slot)
            room = width - used - sep
            if len(shown) > room:
                shown = shown.rstrip()
                if len(shown) > room:
                    if room < MIN_CUT or not chip.cuttable:
                        break
                    shown = text.cut_words(shown, room)
            if sep:
                assembled.append((SEPARATOR, "$text-muted"))
            body = shown.rstrip()
            assembled.append((body, chip.style) if chip.style else body)
            if len(shown) > len(body):
                assembled.append(" " * (len(shown) - len(body)))  # the slot's padding, unstyled
            used += sep + len(shown)
    return Content.assemble(*assembled)


class HeaderStrip(Static):
    """Always-visible status line(s) at the top of the console."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.state = HeaderState()
        self._last_packed: object = None

    def show(self, state: HeaderState) -> None:
        self.state = state
        self._render_state()

    def on_resize(self, event: Resize) -> None:
        self._last_packed = None  # same text, new width: draw again
        self._render_state()

    def _render_state(self) -> None:
        width = self.content_region.width or self.app.size.width
        packed = pack(chips(self.state), width, max_lines(self.state))
        if packed != self._last_packed:  # unchanged header: no repaint, no bytes
            self._last_packed = packed
            self.update(packed)
