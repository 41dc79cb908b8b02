"""A modal that shows the command to run on a host, as copyable text (``c`` copies it)."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, Static, TextArea


class CommandScreen(ModalScreen[None]):
    """Actions stay on each host: this says what to run there, and sends nothing."""

    BINDINGS = [
        Binding("c", "copy", "Copy", id="command.copy", tooltip="Copy the command"),
        Binding("escape,q,enter", "close", "Close", id="command.close", tooltip="Close"),
    ]

    def __init__(self, title: str, why: str, command: str) -> None:
        super().__init__(classes="dialog-screen")
        self._title = title
        self._why = why
        self.command = command

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="command-dialog") as dialog:
            dialog.border_title = Text(self._title)
            yield Static(Text(self._why), id="command-why")
            yield TextArea(self.command, read_only=True, soft_wrap=True, id="command-text")
            yield Label(Text("c: copy   esc: close"), classes="dialog-hint")

    def action_copy(self) -> None:
        self.app.copy_to_clipboard(self.command)
        self.notify("Copied to the clipboard", timeout=2)

    def action_close(self) -> None:
        self.dismiss(None)
