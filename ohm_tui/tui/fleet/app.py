"""``FleetApp``: one read-only console over several hosts' ``ohm watch --listen`` endpoints.

The loop is the single-host console's: a thread worker polls every host (the
fleet client, which knows no Textual), posts a ``FleetReady``, the UI thread
diffs the tables, and only then is the next poll armed. Nothing here controls a
process: ``r`` / ``k`` / ``z`` / ``b`` show the command to run on the owning host.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.message import Message
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import DataTable, Footer, Input, Static
from textual.worker import Worker, WorkerState

from ohm_tui.engine import timeutil
from ohm_tui.fleet import commands
from ohm_tui.fleet.hosts import Host
from ohm_tui.fleet.snapshot import FleetPoller, FleetSnapshot, HostView
from ohm_tui.tui import text
from ohm_tui.tui.fleet import rows
from ohm_tui.tui.fleet.bug_screen import FleetBugScreen
from ohm_tui.tui.fleet.command_screen import CommandScreen
from ohm_tui.tui.fleet.header import header_text
from ohm_tui.tui.keyed_table import KeyedTable
from ohm_tui.tui.screens.crash_detail import CrashDetailScreen
from ohm_tui.tui.stylesheet import css_path

POLL_INTERVAL = 2.0
PANELS = {"agents": "#fleet-agents", "timeline": "#fleet-crashes", "bugs": "#fleet-bugs"}


@dataclass
class FleetReady(Message):
    """A fresh poll of every host, to be rendered."""

    snapshot: FleetSnapshot

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, FleetReady)


class FleetScreen(Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("1", "focus_panel('agents')", "Agents", show=False),
        Binding("2", "focus_panel('timeline')", "Crashes", show=False),
        Binding("3", "focus_panel('bugs')", "Bugs", show=False),
        Binding("enter", "details", "Details", show=False),
        Binding("r", "on_host('respawn')", "Respawn", tooltip="Show the command to run there"),
        Binding("k", "on_host('stop')", "Stop", tooltip="Show the command to run there"),
        Binding("z", "on_host('zombies')", "Zombies", show=False),
        Binding("b", "on_host('bug')", "Bug", tooltip="Show the command to run there"),
        Binding("slash", "filter", "Filter", tooltip="Filter by host, type, task or status"),
        Binding("escape", "clear_filter", "Clear filter", show=False),
        Binding("q", "app.quit", "Quit"),
    ]

    def __init__(self) -> None:
        super().__init__(id="fleet")
        self.needle = ""
        self.agents: dict[str, tuple[HostView, Any]] = {}
        self.crashes: dict[str, tuple[HostView, Any]] = {}
        self.bugs: dict[str, tuple[HostView, Any]] = {}

    @property
    def fleet(self) -> FleetApp:
        app = self.app
        assert isinstance(app, FleetApp)
        return app

    def compose(self) -> ComposeResult:
        yield Static(Text("FLEET · waiting for the first answers…"), id="fleet-header")
        yield Input(placeholder="host, type, task or status", id="fleet-filter")
        with Vertical(id="fleet-agents-panel", classes="fleet-panel") as v:
            v.border_title = Text("1 Agents")
            yield KeyedTable(rows.AGENT_COLUMNS, id="fleet-agents")
        with Vertical(id="fleet-crashes-panel", classes="fleet-panel") as v:
            v.border_title = Text("2 Crashes (24 h)")
            yield KeyedTable(rows.CRASH_COLUMNS, id="fleet-crashes")
        with Vertical(id="fleet-bugs-panel", classes="fleet-panel") as v:
            v.border_title = Text("3 Open bugs")
            yield KeyedTable(rows.BUG_COLUMNS, id="fleet-bugs")
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        self.query_one("#fleet-filter", Input).display = False
        self.query_one("#fleet-agents", KeyedTable).focus()
        if self.fleet.snapshot is not None:
            self.show(self.fleet.snapshot)

    def show(self, snap: FleetSnapshot) -> None:
        now = timeutil.now()
        self.query_one("#fleet-header", Static).update(header_text(self.app, snap, now))
        agent_rows, self.agents = rows.agent_rows(self.app, snap, self.needle, now)
        crash_rows, self.crashes = rows.crash_rows(snap, self.needle, now)
        bug_rows, self.bugs = rows.bug_rows(self.app, snap, self.needle)
        self.query_one("#fleet-agents", KeyedTable).sync(agent_rows)
        self.query_one("#fleet-crashes", KeyedTable).sync(crash_rows)
        self.query_one("#fleet-bugs", KeyedTable).sync(bug_rows)

    # -- selection -------------------------------------------------------------
    def focused_panel(self) -> str:
        focused = self.focused
        for name, selector in PANELS.items():
            if focused is not None and focused.id == selector[1:]:
                return name
        return "agents"

    def selected(self, panel: str) -> tuple[HostView, Any] | None:
        table = self.query_one(PANELS[panel], KeyedTable)
        key = table.cursor_key
        index = {"agents": self.agents, "timeline": self.crashes, "bugs": self.bugs}[panel]
        return None if key is None else index.get(key)

    @on(DataTable.RowSelected)
    def _selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_details()

    # -- actions -----------------------------------------------------------------
    def action_focus_panel(self, name: str) -> None:
        self.query_one(PANELS[name], KeyedTable).focus()

    def action_details(self) -> None:
        panel = self.focused_panel()
        picked = self.selected(panel)
        if picked is None:
            return
        view, item = picked
        if panel == "timeline":  # the crash as its own host recorded it
            self.app.push_screen(CrashDetailScreen(item, read_only=True))
        elif panel == "bugs":
            self.app.push_screen(FleetBugScreen(view.host.name, item))
        else:
            self.action_on_host("respawn")

    def command_for(self, what: str) -> tuple[str, str] | None:
        """(why, command) for ``what`` on the selected row's host; None with nothing selected."""
        panel = self.focused_panel()
        picked = self.selected(panel)
        if picked is None:
            return None
        view, item = picked
        host: Host = view.host
        pid = getattr(item, "pid", None) or getattr(item, "agent_pid", None)
        if what in ("respawn", "stop") and pid is not None:
            verb = "Respawn" if what == "respawn" else "Stop"
            builder = commands.respawn if what == "respawn" else commands.stop
            return f"{verb} {item.agent_type} PID {pid} on {host.name}", builder(host, pid)
        if what == "zombies":
            return f"Zombies and stale entries on {host.name}", commands.clean_zombies(host)
        if what == "bug":
            title = getattr(item, "root_cause", None) or getattr(item, "error_type", None)
            title = title or getattr(item, "title", None) or f"{item.agent_type} on {host.name}"
            return f"File a bug on {host.name}", commands.file_bug(host, text.clean(title))
        return None

    def action_on_host(self, what: str) -> None:
        found = self.command_for(what)
        if found is None:
            self.notify("Select an agent, crash or bug first", severity="warning", timeout=3)
            return
        why, command = found
        note = (
            f"{why}.\nThe fleet view is read-only: actions stay on each host. "
            "Run this there (it checks the process's identity first):"
        )
        self.app.push_screen(CommandScreen("Run on the host", note, command))

    def action_filter(self) -> None:
        box = self.query_one("#fleet-filter", Input)
        box.display = True
        box.focus()

    @on(Input.Changed, "#fleet-filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.needle = event.value.strip()
        if self.fleet.snapshot is not None:
            self.show(self.fleet.snapshot)

    @on(Input.Submitted, "#fleet-filter")
    def _filter_done(self, event: Input.Submitted) -> None:
        self.query_one("#fleet-agents", KeyedTable).focus()

    def action_clear_filter(self) -> None:
        box = self.query_one("#fleet-filter", Input)
        box.value = ""
        box.display = False
        self.query_one("#fleet-agents", KeyedTable).focus()


class FleetApp(App[int]):
    """The fleet console. Build it with :func:`make_fleet_app`."""

    CSS_PATH = css_path()
    TITLE = "ohm fleet"

    def __init__(self, hosts: list[Host], *, timeout: float = 5.0) -> None:
        super().__init__()
        self.hosts = hosts
        self.poller = FleetPoller(hosts, timeout=timeout)
        self.screen_main = FleetScreen()
        self.snapshot: FleetSnapshot | None = None
        self.poll_interval = POLL_INTERVAL
        """Seconds between polls (tests shorten it)."""
        self.frames = 0
        """Polls rendered so far (tests wait on it instead of sleeping)."""
        self._timer: Timer | None = None

    def get_default_screen(self) -> FleetScreen:
        return self.screen_main

    def on_mount(self) -> None:
        self._poll()

    @work(thread=True, exclusive=True, exit_on_error=False, group="fleet", description="poll hosts")
    def _poll(self) -> None:
        self.post_message(FleetReady(self.poller.poll()))

    def on_fleet_ready(self, message: FleetReady) -> None:
        self.snapshot = message.snapshot
        self.frames += 1
        if self.screen_main.is_mounted:
            self.screen_main.show(message.snapshot)

    @on(Worker.StateChanged)
    def _worker_state(self, event: Worker.StateChanged) -> None:
        if event.worker.group != "fleet":
            return
        if event.state == WorkerState.ERROR:
            self.notify(f"polling failed: {event.worker.error!r}", severity="error", markup=False)
        done = (WorkerState.SUCCESS, WorkerState.ERROR, WorkerState.CANCELLED)
        if event.state in done and self.is_running:
            self._timer = self.set_timer(self.poll_interval, self._poll, name="fleet-poll")


def make_fleet_app(hosts: list[Host], *, timeout: float = 5.0) -> FleetApp:
    """The fleet console over ``hosts``, as the CLI and the tests build it."""
    return FleetApp(hosts, timeout=timeout)
