"""The status strip: the whole health of the orchestrator in one or two lines.

It is packed by hand into the available width (one chip never splits across
lines) so that at 80 columns it stays two lines and nothing important is cut.
Every colour also has words ("CRITICAL", "(frozen)", "auto-fix OFF"), so the
strip reads the same with 16 colours or ``NO_COLOR``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from textual.content import Content
from textual.events import Resize
from textual.widgets import Static

from ohm_tui.engine.models import Snapshot
from ohm_tui.tui import text

BADGE_STYLES: dict[str, str] = {
    "healthy": "bold $text-success on $success-muted",
    "degraded": "bold $text-warning on $warning-muted",
    "critical": "bold $text-error on $error-muted",
}
SEPARATOR = " · "
MAX_LINES = 2
MIN_CUT = 12  # narrower than this, a chip that does not fit is left out


@dataclass
class HeaderState:
    """What the strip shows besides the snapshot itself."""

    snapshot: Snapshot | None = None
    paused: bool = False
    read_only: bool = False
    auto_fix: bool = False
    demo: bool = False
    freeze_threshold: float = 300.0
    errors: list[str] = field(default_factory=list)


Chip = tuple[str, str]  # (text, Textual style string)


def chips(state: HeaderState) -> list[Chip]:
    """The strip's pieces, most important first."""
    snap = state.snapshot
    out: list[Chip] = []
    if snap is None:
        out.append((" STARTING ", "bold reverse"))
        out.append(("waiting for the first check", "$text-muted"))
    else:
        report = snap.report
        out.append((f" {report.status.upper()} ", BADGE_STYLES.get(report.status, "bold")))
        poll = report.orchestrator_last_poll
        if poll is None:
            out.append(("last poll unknown", "$text-muted"))
        elif poll > state.freeze_threshold:
            out.append((f"last poll {text.seconds_ago(poll)} (frozen)", "bold $text-error"))
        else:
            out.append((f"last poll {text.seconds_ago(poll)}", ""))
        out.append((f"{report.active_agents} active", ""))
        crash_style = "bold $text-error" if report.crashed_agents_last_hour else ""
        out.append((f"{text.count(report.crashed_agents_last_hour, 'crash')}/h", crash_style))
        out.append((f"respawn ok {text.rate(report.respawn_success_rate)}", ""))
        bug_style = "$text-warning" if snap.open_bugs else ""
        out.append((text.count(snap.open_bugs, "open bug"), bug_style))
        checked = datetime.fromtimestamp(report.checked_at).strftime("%H:%M:%S")
        out.append((f"checked {checked}", "$text-muted"))
    if state.read_only:  # implies auto-fix off
        out.append(("READ-ONLY", "bold reverse"))
    elif state.auto_fix:
        out.append(("auto-fix ON", "$text-success"))
    else:
        out.append(("auto-fix OFF", "$text-warning"))
    if state.paused:
        out.append(("PAUSED", "bold $text-warning"))
    if state.demo:
        out.append(("demo", "italic $text-muted"))
    if snap is not None and not snap.is_fixer and not state.read_only:
        out.append(("watch only (another ohm fixes)", "$text-muted"))
    problems = list(state.errors) + (list(snap.errors) if snap is not None else [])
    for problem in problems:
        out.append((f"error: {text.one_line(text.clean(problem), 200)}", "bold $text-error"))
    return out


def max_lines(state: HeaderState) -> int:
    """Two lines; a third only while there is an engine error to show."""
    has_error = bool(state.errors) or bool(state.snapshot and state.snapshot.errors)
    return MAX_LINES + 1 if has_error else MAX_LINES


def pack(parts: list[Chip], width: int, max_lines: int = MAX_LINES) -> Content:
    """Lay chips out left to right, wrapping between chips, never inside one.

    On the last line a chip that does not fit is cut to the space left (the
    least important chips, such as an error's text, come last).
    """
    width = max(20, width)
    lines: list[list[Chip]] = [[]]
    used = 0
    for chip_text, style in parts:
        sep = len(SEPARATOR) if lines[-1] else 0
        if lines[-1] and used + sep + len(chip_text) > width:
            if len(lines) < max_lines:
                lines.append([])
                used, sep = 0, 0
            else:
                room = width - used - sep
                if room >= MIN_CUT:
                    lines[-1].append((chip_text[: room - 1] + "…", style))
                break
        if len(chip_text) > width:
            chip_text = chip_text[: width - 1] + "…"
        lines[-1].append((chip_text, style))
        used += sep + len(chip_text)
    assembled: list[str | tuple[str, str]] = []
    for number, line in enumerate(lines):
        if number:
            assembled.append("\n")
        for index, (chip_text, style) in enumerate(line):
            if index:
                assembled.append((SEPARATOR, "$text-muted"))
            assembled.append((chip_text, style) if style else chip_text)
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
