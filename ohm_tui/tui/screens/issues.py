"""The issues list: why the status is what it is, one row per issue, and where an
operator acknowledges one (``a``) or takes an acknowledgement back (``u``).

A modal over the overview, sized for 80x24: worst first, acknowledged ones
dimmed and marked "acked by X until …", never hidden. The issue's words take the
room (its id, for ``ohm ack``, is in the detail, not a column); under the table the
highlighted issue reads in full, and enter opens it on its own.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import DataTable, Label, Static

from ohm_tui.cli.table import Column
from ohm_tui.engine import timeutil
from ohm_tui.engine.detect import acks, headline
from ohm_tui.engine.model import Ack, Issue, Snapshot
from ohm_tui.tui import text
from ohm_tui.tui.keyed_table import KeyedTable
from ohm_tui.tui.messages import SnapshotReady
from ohm_tui.tui.state import ConsoleState
from ohm_tui.tui.tones import tone

COLUMNS: list[tuple[str, str]] = [
    ("Status", "severity"),
    ("Issue", "words"),
    ("Ack", "ack"),
]
# How the columns fit the dialog (as the agents table): the ack goes first, the issue's
# words take the room. The id (what ``ohm ack`` takes) means little to a person: it
# is in the detail under the table, not a column.
PRIORITIES: dict[str, Column] = {
    "severity": Column("Status"),
    "words": Column("Issue", min_width=24, long=True),
    "ack": Column("Ack", priority=1, min_width=14),
}
SEVERITY_TONES = {"critical": "text-error", "degraded": "text-warning"}


def ack_label(ack: Ack | None, now: float) -> str:
    """``acked by alice, 59 minutes left`` / ``acked by alice until it changes`` / ``-``."""
    if ack is None:
        return "-"
    who = text.one_line(text.clean(ack.by), 16)
    if ack.until is None:
        return f"acked by {who} until it changes"
    return f"acked by {who}, {text.duration(ack.until - now)} left"


def issue_text(issue: Issue, now: float) -> Text:
    """The whole issue for a person: its words, severity and type, the agent and task,
    the acknowledgement and the complete error text (outside text kept literal)."""
    out = Text()
    out.append_text(text.literal(headline.words(issue)))
    out.append("\n")
    if issue.error:  # first: what the short view under the list must show
        out.append("error: ", style="bold")
        out.append_text(text.literal(issue.error.strip()))
        out.append("\n")
    fields = [
        ("severity", str(issue.severity)),
        ("type", str(issue.type)),
        ("agent", text.agent_label(issue.agent_type, issue.agent_pid) if issue.agent_type else ""),
        ("task", issue.task_id or ""),
        ("ack", ack_label(issue.ack, now) if issue.ack is not None else "not acknowledged"),
        ("action", issue.action_taken or ""),
        ("bug", f"BUG-{issue.bug_number:03d}" if issue.bug_number is not None else ""),
        ("id", issue.issue_id or acks.issue_id(issue)),
    ]
    for name, value in fields:
        if value:
            out.append(f"{name}: ", style="bold")
            out.append_text(text.literal(value))
            out.append("\n")
    out.rstrip()
    return out


class IssueDetailScreen(ModalScreen[None]):
    """One issue in full (enter on the issues list): nothing cut."""

    BINDINGS = [
        Binding("escape,q,enter", "close", "Close", id="issue.close", tooltip="Back to the list")
    ]

    def __init__(self, title: str, body: Text) -> None:
        super().__init__(classes="dialog-screen")
        self._title = title
        self._body = body

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="issue-detail-dialog") as dialog:
            dialog.border_title = Text(self._title)
            with VerticalScroll(classes="dialog-body"):
                yield Static(self._body, id="issue-detail-body")
            yield Label(Text("esc: back to the list"), classes="dialog-hint")

    def action_close(self) -> None:
        self.dismiss(None)


def ordered(issues: list[Issue]) -> list[Issue]:
    """One row per issue id: unacknowledged first, then worst first."""
    by_id = acks.group(issues)
    heads = [min(group, key=headline.rank) for group in by_id.values()]
    return sorted(heads, key=lambda i: (i.ack is not None, *headline.rank(i)))


class IssuesScreen(ModalScreen[None]):
    """Current issues; ``a`` acknowledges the highlighted one, ``u`` takes it back."""

    BINDINGS = [
        Binding(
            "a",
            "ack",
            "Acknowledge",
            id="issues.ack",
            tooltip="Acknowledge the highlighted issue: no alert, no colour until it changes",
        ),
        Binding(
            "u",
            "unack",
            "Take back",
            id="issues.unack",
            tooltip="Take back the highlighted issue's acknowledgement",
        ),
        Binding("escape,q,i", "close", "Close", id="issues.close", tooltip="Back to the overview"),
    ]

    def __init__(self, state: ConsoleState) -> None:
        super().__init__(classes="dialog-screen")
        self.monitor = state.monitor
        self.snapshot = state.snapshot
        """The snapshot shown: the console's newest when opened, then the one after each ack."""
        self.read_only = state.read_only
        self.issues: dict[str, Issue] = {}

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="issues-dialog") as dialog:
            dialog.border_title = Text("Issues")
            yield KeyedTable(COLUMNS, priorities=PRIORITIES, id="issues-table")
            yield Static(Text(""), id="issue-detail")
            hint = "enter: full issue   a: acknowledge   u: take back   esc: close"
            yield Label(Text(hint), classes="dialog-hint")

    def on_mount(self) -> None:
        self.show(self.snapshot)
        self.query_one(KeyedTable).focus()

    @property
    def selected(self) -> Issue | None:
        key = self.query_one(KeyedTable).cursor_key
        return None if key is None else self.issues.get(key)

    def show(self, snapshot: Snapshot | None) -> None:
        self.snapshot = snapshot
        issues = ordered(snapshot.report.issues) if snapshot is not None else []
        self.issues = {i.issue_id or acks.issue_id(i): i for i in issues}
        now = timeutil.now()
        rows = [(key, self._cells(issue, now)) for key, issue in self.issues.items()]
        self.query_one(KeyedTable).sync(rows)
        status = snapshot.report.status.upper() if snapshot is not None else "STARTING"
        title = f"Issues: {len(rows)} ({status})" if rows else f"Issues: none ({status})"
        self.query_one("#issues-dialog").border_title = Text(title)
        self._show_detail()
        self.refresh_bindings()

    def _show_detail(self) -> None:
        """The highlighted issue in full, wrapped, under the table."""
        issue = self.selected
        detail = self.query_one("#issue-detail", Static)
        body = issue_text(issue, timeutil.now()) if issue is not None else Text("")
        if getattr(detail, "_ohm_body", None) != body.plain:  # unchanged: no repaint
            detail._ohm_body = body.plain  # type: ignore[attr-defined]
            detail.update(body)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        self._show_detail()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        """Enter: the highlighted issue on its own screen, nothing cut."""
        event.stop()
        issue = self.selected
        if issue is not None:
            title = f"Issue: {text.one_line(text.clean(headline.words(issue)), 60)}"
            self.app.push_screen(IssueDetailScreen(title, issue_text(issue, timeutil.now())))

    def _cells(self, issue: Issue, now: float) -> list[Text]:
        dim = issue.ack is not None
        sev_style = tone(self.app, "text-muted" if dim else SEVERITY_TONES.get(issue.severity, ""))
        muted = tone(self.app, "text-muted") if dim else ""
        return [
            Text(issue.severity, style=sev_style),
            text.literal(headline.words(issue), muted, max_len=120),
            text.literal(ack_label(issue.ack, now), muted, max_len=40),
        ]

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("ack", "unack"):
            issue = self.selected
            if self.read_only or issue is None:
                return None
            return (issue.ack is None) if action == "ack" else (issue.ack is not None)
        return True

    def action_close(self) -> None:
        self.dismiss(None)

    def action_ack(self) -> None:
        issue = self.selected
        if issue is None or self.read_only:
            return
        ref = issue.issue_id or acks.issue_id(issue)
        monitor = self.monitor
        self._run(lambda: monitor.acknowledge(ref), f"Acknowledged: {headline.words(issue)}")

    def action_unack(self) -> None:
        issue = self.selected
        if issue is None or issue.ack is None or self.read_only:
            return
        ref = issue.issue_id or acks.issue_id(issue)
        monitor = self.monitor
        self._run(lambda: monitor.unacknowledge(ref), f"Took back: {headline.words(issue)}")

    @work(thread=True, exit_on_error=False, group="actions", description="acknowledge")
    def _run(self, change: Callable[[], Any], done: str) -> None:
        """Write the ack off the UI thread, then show the status it makes at once."""
        try:
            change()
            snapshot = self.monitor.snapshot()
        except Exception as exc:
            message = f"{type(exc).__name__}: {exc}"
            self.app.call_from_thread(self.notify, message, severity="error", markup=False)
            return
        self.app.post_message(SnapshotReady(snapshot))
        self.app.call_from_thread(self._after, snapshot, done)

    def _after(self, snapshot: Snapshot, done: str) -> None:
        self.notify(text.clean(done), title="acknowledge", markup=False)
        if self.is_attached:
            self.show(snapshot)
