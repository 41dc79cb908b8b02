"""One bug of one host, read-only (changing it is ``ohm bug ...`` on that host)."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Static

from ohm_tui.engine.model import BugRow
from ohm_tui.tui import text


def bug_text(host: str, bug: BugRow) -> Text:
    out = Text()
    out.append_text(text.literal(f"{bug.label} on {host}: {bug.title}", "bold"))
    rows: list[tuple[str, object]] = [
        ("priority", bug.priority),
        ("status", bug.status),
        ("occurrences", bug.occurrences),
        ("last seen", text.ago(bug.last_seen)),
        ("assigned to", bug.assigned_to or "-"),
        ("root cause", bug.root_cause or "-"),
        ("related files", ", ".join(bug.related_files) or "-"),
    ]
    for label, value in rows:
        out.append(f"\n{label}: ", style="bold")
        out.append_text(text.literal(value))
    out.append("\n\n")
    out.append_text(text.literal(bug.description))
    if bug.stack_trace:
        out.append("\n\nstack trace\n", style="bold underline")
        out.append_text(text.literal(bug.stack_trace))
    return out


class FleetBugScreen(Screen[None]):
    BINDINGS = [Binding("escape,q", "app.pop_screen", "Back", id="bug.back")]

    def __init__(self, host: str, bug: BugRow) -> None:
        super().__init__()
        self.host = host
        self.bug = bug

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="fleet-bug"):
            yield Static(bug_text(self.host, self.bug), id="fleet-bug-body")
        yield Footer(compact=True)
