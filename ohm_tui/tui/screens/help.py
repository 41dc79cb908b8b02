"""The help screen: every key the console answers to, grouped by where it works."""

from __future__ import annotations

from collections.abc import Sequence

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Label, Static

HelpRow = tuple[str, str, str]  # key, description, tooltip
HelpSection = tuple[str, Sequence[HelpRow]]


def help_text(sections: Sequence[HelpSection]) -> Table:
    """A two-column grid (keys, then what they do); the second column wraps."""
    grid = Table.grid(padding=(0, 2), expand=True)
    grid.add_column(no_wrap=True)
    grid.add_column(ratio=1)
    for number, (title, rows) in enumerate(sections):
        if number:
            grid.add_row(Text(""), Text(""))
        grid.add_row(Text(title, style="bold underline"), Text(""))
        for key, description, tooltip in rows:
            what = Text(description)
            if tooltip:
                what.append(f": {tooltip}", style="dim")
            grid.add_row(Text(key, style="bold"), what)
    return grid


class HelpScreen(ModalScreen[None]):
    """Built from the live bindings (keymaps included), so it cannot drift from the app."""

    BINDINGS = [
        Binding("escape,q,question_mark", "close", "Close help", id="help.close"),
    ]

    def __init__(self, sections: Sequence[HelpSection]) -> None:
        super().__init__(classes="dialog-screen")
        self.sections = list(sections)

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="help-dialog") as dialog:
            dialog.border_title = Text("ohm help")
            yield Label(Text("Keys (esc, q or ? closes; arrows scroll)"), classes="dialog-hint")
            with VerticalScroll(id="help-body", can_focus=True):
                yield Static(help_text(self.sections), id="help-text")

    def on_mount(self) -> None:
        self.query_one("#help-body").focus()

    def action_close(self) -> None:
        self.dismiss(None)
