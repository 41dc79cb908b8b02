"""One crash: the full stack trace (highlighted), root cause, related files, log excerpt."""

from __future__ import annotations

from rich.syntax import Syntax
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Static

from ohm_tui.engine.model import CrashRow, exit_code_text
from ohm_tui.tui import text
from ohm_tui.tui.messages import BugFormRequested
from ohm_tui.tui.timeline_panel import action_text


def summary_text(crash: CrashRow) -> Text:
    when = text.local_time(crash.crashed_at)
    out = Text()
    out.append_text(
        text.literal(crash.error_type or f"exit code {exit_code_text(crash.exit_code)}", "bold")
    )
    if crash.error_message:
        out.append(": ")
        out.append_text(text.literal(crash.error_message))
    rows: list[tuple[str, object]] = [
        ("when", f"{when} ({text.ago(crash.crashed_at)})"),
        ("agent", f"{text.agent_label(crash.agent_type, crash.agent_pid)} ({crash.agent_key})"),
        ("task", crash.task_id or "-"),
        ("exit code", exit_code_text(crash.exit_code)),
        ("action", action_text(crash)),
        ("command", crash.command_text or "-"),
        ("log file", crash.log_file or "-"),
        ("fingerprint", crash.fingerprint or "-"),
    ]
    for label, value in rows:
        out.append(f"\n{label}: ", style="bold")
        out.append_text(text.literal(value))
    return out


def crash_title(crash: CrashRow) -> str:
    """Whose crash this is. Not the database row id: "Crash #192" when 24 crashes
    are on record would be a number that means nothing (retention prunes rows)."""
    return f"Crash of {text.clean(text.agent_label(crash.agent_type, crash.agent_pid))}"


def section(title: str, body: Text) -> Text:
    out = Text()
    out.append(title, style="bold underline")
    out.append("\n")
    out.append_text(body)
    return out


def trace_renderable(trace: str | None) -> Syntax | Text:
    """The traceback through the ``pytb`` lexer: highlighted, and never parsed as markup."""
    if not trace:
        return Text("(no stack trace in the log)", style="italic")
    return Syntax(
        text.clean(trace), "pytb", theme="ansi_dark", word_wrap=True, background_color="default"
    )


class CrashDetailScreen(Screen[None]):
    """Pushed over the main screen; ``b`` files a bug prefilled from this crash."""

    BINDINGS = [
        Binding("escape,q", "back", "Back", id="crash.back", tooltip="Back to the overview"),
        Binding("b", "file_bug", "File bug", id="crash.file_bug", tooltip="File a bug from this"),
    ]

    def __init__(self, crash: CrashRow, *, read_only: bool = False) -> None:
        super().__init__(classes="detail-screen")
        self.crash = crash
        self.read_only = read_only

    def compose(self) -> ComposeResult:
        crash = self.crash
        with VerticalScroll(id="crash-body", classes="detail-body") as body:
            body.border_title = Text(crash_title(crash))
            yield Static(summary_text(crash), id="crash-summary")
            yield Static(
                section("Root cause", text.literal(crash.root_cause or "unknown")),
                id="crash-root-cause",
            )
            files = "\n".join(crash.related_files) if crash.related_files else "(none found)"
            yield Static(section("Related files", text.literal(files)), id="crash-files")
            yield Static(Text("Stack trace", style="bold underline"))
            yield Static(trace_renderable(crash.stack_trace), id="crash-trace")
            yield Static(
                section("Log excerpt", text.literal(crash.log_excerpt or "(empty)")),
                id="crash-log",
            )
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#crash-body").focus()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "file_bug" and self.read_only:
            return None
        return True

    def action_back(self) -> None:
        self.dismiss(None)

    def action_file_bug(self) -> None:
        self.post_message(BugFormRequested(crash=self.crash))
