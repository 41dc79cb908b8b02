"""One bug, the whole report, with keys to close, reopen and change its priority."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Static

from ohm_tui.engine.config import PRIORITIES
from ohm_tui.engine.model import BugRow
from ohm_tui.engine.monitor import OrchestratorHealthMonitor
from ohm_tui.tui import text
from ohm_tui.tui.screens.crash_detail import trace_renderable

CLOSED = ("closed", "resolved")


def when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return f"{text.local_time(ts)} ({text.ago(ts)})"


def report_text(bug: BugRow) -> Text:
    out = Text()
    out.append(f"{bug.label}: ", style="bold")
    out.append_text(text.literal(bug.title, "bold"))
    rows: list[tuple[str, object]] = [
        ("priority", bug.priority),
        ("status", bug.status),
        ("category", bug.category or "-"),
        ("reporter", bug.reporter),
        ("assigned to", bug.assigned_to or "-"),
        ("created", when(bug.created_at)),
        ("updated", when(bug.updated_at)),
        ("occurrences", bug.occurrences),
        ("last seen", when(bug.last_seen)),
        ("issue type", bug.issue_type or "-"),
        ("fingerprint", bug.fingerprint or "-"),
    ]
    for label, value in rows:
        out.append(f"\n{label}: ", style="bold")
        out.append_text(text.literal(value))
    blocks: list[tuple[str, str]] = [
        ("Description", bug.description or "(none)"),
        ("Root cause", bug.root_cause or "unknown"),
        (
            "Reproduction steps",
            "\n".join(f"{n}. {step}" for n, step in enumerate(bug.reproduction_steps, 1))
            or "(none)",
        ),
        ("Related files", "\n".join(bug.related_files) or "(none)"),
        ("Error logs", bug.error_logs or "(none)"),
    ]
    for title, body in blocks:
        out.append(f"\n\n{title}\n", style="bold underline")
        out.append_text(text.literal(body))
    return out


def shifted_priority(current: str, step: int) -> str:
    """``step=-1`` raises (towards Critical), ``+1`` lowers; clamped at the ends."""
    index = PRIORITIES.index(current) if current in PRIORITIES else PRIORITIES.index("Medium")
    return PRIORITIES[min(len(PRIORITIES) - 1, max(0, index + step))]


class BugDetailScreen(Screen[None]):
    """Changes run in a thread worker; the screen re-renders from what the engine returns."""

    BINDINGS = [
        Binding("escape,q", "back", "Back", id="bug.back", tooltip="Back to the overview"),
        Binding("c", "close_bug", "Close", id="bug.close", tooltip="Close this bug"),
        Binding("o", "reopen_bug", "Reopen", id="bug.reopen", tooltip="Reopen this bug"),
        Binding(
            "plus,equals_sign",
            "priority(-1)",
            "Priority +",
            id="bug.raise",
            tooltip="Raise the priority (towards Critical)",
        ),
        Binding(
            "minus",
            "priority(1)",
            "Priority -",
            id="bug.lower",
            tooltip="Lower the priority (towards Low)",
        ),
        # Reached only when the key's own action above is greyed out (Textual tries the
        # next binding of a key whose action is disabled): a toast says why, never silence.
        *(
            Binding(key, f"refuse('{action}')", show=False, system=True)
            for key, action in (
                ("c", "close_bug"),
                ("o", "reopen_bug"),
                ("plus,equals_sign", "priority"),
                ("minus", "priority"),
            )
        ),
    ]
    CHANGES = {
        "close_bug": "closing bugs",
        "reopen_bug": "reopening bugs",
        "priority": "changing a bug's priority",
    }
    """What the read-only toast calls each change ("read-only: closing bugs is disabled")."""

    @dataclass
    class Changed(Message):
        bug: BugRow | None
        what: str
        error: str | None = None

    def __init__(
        self, monitor: OrchestratorHealthMonitor, bug: BugRow, *, read_only: bool = False
    ) -> None:
        super().__init__(classes="detail-screen")
        self.monitor = monitor
        self.bug = bug
        self.read_only = read_only

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="bug-body", classes="detail-body") as body:
            body.border_title = Text(self.bug.label)
            yield Static(report_text(self.bug), id="bug-report")
            yield Static(Text("Stack trace", style="bold underline"))
            yield Static(trace_renderable(self.bug.stack_trace), id="bug-trace")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#bug-body").focus()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("close_bug", "reopen_bug", "priority"):
            if self.read_only:
                return None
            if action == "close_bug" and self.bug.status in CLOSED:
                return None
            if action == "reopen_bug" and self.bug.status not in CLOSED:
                return None
        return True

    def why_not(self, action: str) -> str | None:
        """Why ``action`` cannot run now (its key is greyed out), or ``None`` if it can."""
        if action in self.CHANGES and self.read_only:
            return f"read-only: {self.CHANGES[action]} is disabled"
        if action == "close_bug" and self.bug.status in CLOSED:
            return f"{self.bug.label} is already {self.bug.status}"
        if action == "reopen_bug" and self.bug.status not in CLOSED:
            return f"{self.bug.label} is already open"
        return None

    def action_refuse(self, action: str) -> None:
        """Say why a greyed-out key did nothing."""
        reason = self.why_not(action)
        if reason is not None:
            self.notify(reason, severity="warning", timeout=3, markup=False)

    def action_back(self) -> None:
        self.dismiss(None)

    def action_close_bug(self) -> None:
        self._change("closed", lambda: self.monitor.close_bug(self.bug.bug_number))

    def action_reopen_bug(self) -> None:
        self._change("reopened", lambda: self.monitor.reopen_bug(self.bug.bug_number))

    def action_priority(self, step: int) -> None:
        target = shifted_priority(self.bug.priority, step)
        if target == self.bug.priority:
            self.notify(f"{self.bug.label} is already {target}.")
            return
        self._change(
            f"set to {target}",
            lambda: self.monitor.set_bug_priority(self.bug.bug_number, target),
        )

    @work(thread=True, exclusive=True, exit_on_error=False, group="bug-change")
    def _change(self, what: str, change: Callable[[], BugRow]) -> None:
        try:
            bug = change()
        except Exception as exc:
            self.post_message(self.Changed(None, what, f"{type(exc).__name__}: {exc}"))
        else:
            self.post_message(self.Changed(bug, what))

    def on_bug_detail_screen_changed(self, message: Changed) -> None:
        if message.error is not None or message.bug is None:
            self.notify(text.clean(message.error), severity="error", markup=False)
            return
        self.bug = message.bug
        self.query_one("#bug-report", Static).update(report_text(self.bug))
        self.refresh_bindings()
        self.notify(f"{self.bug.label} {message.what}.", markup=False)
