"""One agent: its command, cwd, PID, respawn history, and its log tail following live.

The log pane is filled from the existing tail at once (pm2's monit starts empty,
which is useless right after a crash), then new text is appended every second.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Log, Static

from ohm_tui.engine.model import AgentView, Event, EventKind, exit_code_text, is_process_id
from ohm_tui.engine.monitor import OrchestratorHealthMonitor
from ohm_tui.tui import text

TAIL_BYTES = 65536
FOLLOW_INTERVAL = 1.0


def fresh_part(previous: str, current: str) -> str | None:
    """What ``current`` (a newer tail of the same log) adds after ``previous``.

    Both are tails bounded by bytes, so the window may have slid: the answer is
    what follows the longest end of ``previous`` that starts ``current``.
    ``None`` means the two do not overlap (log rotated or truncated): re-fill.
    """
    if current == previous or not current:
        return "" if current == previous else None
    if current.startswith(previous):
        return current[len(previous) :]
    anchor = previous[-256:]
    if not anchor:
        return current
    start = current.find(anchor)
    while start != -1:
        end = start + len(anchor)
        if previous.endswith(current[:end]):
            return current[end:]
        start = current.find(anchor, start + 1)
    return None


def history_for(agent: AgentView, events: list[Event]) -> list[Event]:
    """Events about this agent run or about its task (respawns replace the run key).

    A session's "pid" is a thread id, which Python hands to the next thread at once:
    only its key names its run, or it would show another session's failures."""
    by_pid = is_process_id(agent.pid)
    mine = []
    for event in events:
        same_run = event.agent_key == agent.key or (by_pid and event.agent_pid == agent.pid)
        same_task = (
            agent.task_id is not None
            and event.task_id == agent.task_id
            and event.agent_type in (None, agent.agent_type)
        )
        if same_run or same_task:
            mine.append(event)
    return sorted(mine, key=lambda e: e.ts)


def session_log_text(agent: AgentView, events: list[Event]) -> list[str]:
    """What a session's log pane says instead of staying empty: it has no log file."""
    lines = [
        "A session has no log file: it is a thread of the orchestrator, and its",
        "Claude calls are recorded in claude_invocations.db (ohm cost shows them).",
    ]
    if agent.reason:
        lines.append(f"Last call: {text.one_line(text.clean(agent.reason), 200)}")
    failed = [e for e in events if e.kind == EventKind.CRASHED]
    if failed:
        newest = failed[-1]
        message = text.one_line(text.clean(newest.message), 300)
        lines.append(f"{text.clock(newest.ts)} {message}")
    elif not agent.reason:
        lines.append("Last call: no failed call recorded")
    return lines


def title_text(agent: AgentView) -> Text:
    """``Agent 4242``; a session's thread id names no process: ``Session architect``."""
    if agent.source == "session":
        return Text("Session ").append_text(text.literal(agent.agent_type))
    return Text(f"Agent {agent.pid}")


def info_text(agent: AgentView) -> Text:
    """What the run is. A session has no PID and is never respawned: neither is shown."""
    session = agent.source == "session"
    out = Text()
    out.append("session" if session else f"PID {agent.pid}", style="bold")
    out.append(" · ")
    out.append_text(text.literal(agent.agent_type))
    out.append(" · task ")
    out.append_text(text.literal(agent.task_id or "-"))
    out.append(f" · {agent.status.replace('_', ' ')}")
    if not session:
        out.append(f" · respawns {agent.respawns}/{agent.max_respawns}")
    out.append(f" · source {agent.source}")
    if agent.exit_code is not None:
        out.append(f" · exit code {exit_code_text(agent.exit_code)}")
    for label, value in (
        ("command", agent.command_text),
        ("cwd", agent.cwd),
        ("log", agent.log_file),
    ):
        out.append(f"\n{label}: ", style="bold")
        out.append_text(text.literal(value or "-"))
    if agent.worktree_path or agent.worktree_branch:
        out.append("\nworktree: ", style="bold")
        out.append_text(text.literal(agent.worktree_path or "-"))
        if agent.worktree_branch:
            out.append(" on branch ")
            out.append_text(text.literal(agent.worktree_branch))
    if agent.source == "session":
        out.append("\nclaude processes: ", style="bold")
        out.append(", ".join(str(p) for p in agent.children) or "none running")
        out.append("  (a thread of the orchestrator: never signalled or respawned)")
    return out


def history_text(events: list[Event], *, session: bool = False) -> Text:
    out = Text()
    out.append("Respawn history", style="bold")
    if not events:
        out.append(
            "\n(none: a session is a thread of the orchestrator, never respawned)"
            if session
            else "\n(none recorded)"
        )
    for event in events[-8:]:
        when = text.clock(event.ts)
        out.append(f"\n{when} {event.kind}: ")
        out.append_text(text.literal(event.message, max_len=200))
    return out


class AgentDetailScreen(Screen[None]):
    """Pushed over the main screen (whose refresh pauses meanwhile)."""

    BINDINGS = [
        Binding("escape,q", "back", "Back", id="agent.back", tooltip="Back to the overview"),
        Binding(
            "f",
            "follow",
            "Follow",
            id="agent.follow",
            tooltip="Follow the log (jump to new lines) or stop following",
        ),
    ]

    @dataclass
    class TailRead(Message):
        """A fresh tail of the log (read off the UI thread)."""

        tail: str
        error: str | None = None

    @dataclass
    class HistoryRead(Message):
        events: list[Event]

    def __init__(
        self, monitor: OrchestratorHealthMonitor, agent: AgentView, *, log_only: bool = False
    ) -> None:
        super().__init__(classes="detail-screen")
        self.monitor = monitor
        self.agent = agent
        self.log_only = log_only
        self._tail = ""
        self._reading = False

    def compose(self) -> ComposeResult:
        with Vertical(id="agent-head", classes="detail-head") as head:
            head.border_title = title_text(self.agent)
            yield Static(info_text(self.agent), id="agent-info")
            yield Static(history_text([], session=self.is_session), id="agent-history")
        log = Log(id="agent-log", max_lines=5000)
        log.border_title = Text("Log (following)")
        yield log
        yield Footer()

    def on_mount(self) -> None:
        if self.log_only or self.agent.source == "session":  # a session has no respawns
            self.query_one("#agent-history").display = False
        self.query_one("#agent-log", Log).focus()
        self._read_history()
        if self.is_session:  # no log file to follow: the history read fills the pane
            self.query_one("#agent-log", Log).border_title = Text("Log (a session has none)")
            return
        self._read_tail()
        self.set_interval(FOLLOW_INTERVAL, self._read_tail)

    @property
    def is_session(self) -> bool:
        return self.agent.source == "session" and not self.agent.log_file

    def _read_tail(self) -> None:
        if not self._reading:
            self._reading = True
            self._tail_worker()

    @work(thread=True, exclusive=True, exit_on_error=False, group="agent-log")
    def _tail_worker(self) -> None:
        try:
            tail = self.monitor.agent_log_tail(self.agent.key, TAIL_BYTES)
        except Exception as exc:  # the engine's errors become a line, never a crash
            self.post_message(self.TailRead("", error=f"{type(exc).__name__}: {exc}"))
        else:
            self.post_message(self.TailRead(tail))

    @work(thread=True, exit_on_error=False, group="agent-history")
    def _read_history(self) -> None:
        try:
            events = self.monitor.events(limit=500)
        except Exception:
            events = []
        self.post_message(self.HistoryRead(history_for(self.agent, events)))

    def on_agent_detail_screen_history_read(self, message: HistoryRead) -> None:
        session = self.is_session
        self.query_one("#agent-history", Static).update(
            history_text(message.events, session=session)
        )
        if session:
            log = self.query_one("#agent-log", Log)
            log.clear()
            log.write_lines(session_log_text(self.agent, message.events))

    def on_agent_detail_screen_tail_read(self, message: TailRead) -> None:
        self._reading = False
        log = self.query_one("#agent-log", Log)
        if message.error is not None:
            log.border_subtitle = Text(text.one_line(text.clean(message.error), 80))
            return
        log.border_subtitle = None
        added = fresh_part(self._tail, message.tail)
        if added is None:
            log.clear()
            added = message.tail
        self._tail = message.tail
        if added:
            log.write(text.clean(added))

    def action_back(self) -> None:
        self.dismiss(None)

    def action_follow(self) -> None:
        if self.is_session:
            return
        log = self.query_one("#agent-log", Log)
        log.auto_scroll = not log.auto_scroll
        if log.auto_scroll:
            log.scroll_end(animate=False)
        log.border_title = Text("Log (following)" if log.auto_scroll else "Log (f: follow)")
