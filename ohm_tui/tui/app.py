"""``OhmApp``: a thin App that runs the engine off the UI thread and hands frames to the dashboard.

The loop (after Dolphie): a thread worker collects a ``Snapshot`` and posts it;
the UI thread renders it; only then is the next collection armed with
``set_timer``. So refreshes never overlap, and while a modal or detail screen is
open, or the operator paused, nothing is collected at all. Engine events (a
crash, a respawn) arrive from the engine's own thread through a listener that
only posts a message, and trigger a collection at once: a crash is on screen
within a second instead of at the next periodic check.
"""

from __future__ import annotations

import contextlib
import time
from collections import deque
from pathlib import Path
from typing import ClassVar

from textual import on, work
from textual.app import App, ScreenStackError
from textual.binding import Binding, BindingType
from textual.timer import Timer
from textual.worker import Worker, WorkerState

from ohm_tui.engine.detect import headline
from ohm_tui.engine.model import Event, EventKind, Snapshot
from ohm_tui.engine.monitor import OrchestratorHealthMonitor
from ohm_tui.tui import text
from ohm_tui.tui.commands import OhmCommands
from ohm_tui.tui.dashboard import DashboardScreen
from ohm_tui.tui.help_sections import help_sections
from ohm_tui.tui.messages import (
    BugFormRequested,
    EngineEvent,
    PauseRequested,
    RefreshRequested,
    SnapshotReady,
)
from ohm_tui.tui.screens.bug_form import draft_from_agent, draft_from_crash
from ohm_tui.tui.screens.help import HelpScreen
from ohm_tui.tui.state import ConsoleState
from ohm_tui.tui.stylesheet import css_path

# Every engine event (a crash, a respawn...) refreshes at once; this timer only
# ages the clocks on screen, so it can be slow: over SSH each redraw costs bytes.
REFRESH_INTERVAL = 2.0
ALERT_WINDOW = 8.0
ALERTS_PER_WINDOW = 2
SOON = 0.02  # "at once", for a refresh asked for while one was running (a 0 s timer is invalid)
CRITICAL_KINDS = {
    "gave_up",
    "crash_storm",
    "orchestrator_freeze",
    "orchestrator_gone",
    "restart_failed",
    "critical",
}


def is_critical(event: Event) -> bool:
    return event.kind in CRITICAL_KINDS or "critical" in event.kind


class OhmApp(App[int]):
    """The console. Build it with :func:`make_app`."""

    CSS_PATH = css_path()
    TITLE = "ohm"
    SUB_TITLE = "orchestrator health monitor"
    COMMANDS = App.COMMANDS | {OhmCommands}
    HORIZONTAL_BREAKPOINTS = [
        (0, "-narrow"),
        (160, "-wide"),
    ]
    VERTICAL_BREAKPOINTS = [(0, "-short"), (34, "-tall")]
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("question_mark", "help", "Help", id="help", tooltip="Show every key"),
    ]

    def __init__(
        self,
        monitor: OrchestratorHealthMonitor,
        *,
        read_only: bool = False,
        demo: object | None = None,
    ) -> None:
        super().__init__()
        self.monitor = monitor
        self.demo = demo
        # A demo's state dir is a fresh temp path nobody typed: the header and ``?``
        # show it (a DemoSession has ``state_dir`` and ``root``; read, never typed on).
        self.state = ConsoleState(
            monitor,
            read_only=read_only or monitor.read_only,
            demo=demo is not None,
            demo_dir=_path_of(demo, "state_dir"),
            demo_root=_path_of(demo, "root"),
        )
        """What the screens draw: they get this, never the App."""
        self.dashboard = DashboardScreen(self.state)
        self.engine_started = False
        self._collecting = False
        self._again = False
        self._timer: Timer | None = None
        self._listening = False
        self._alerts: deque[float] = deque()
        self._held_alerts = 0
        self._known_errors: set[str] = set()
        self.refresh_interval = REFRESH_INTERVAL
        """Seconds between snapshots (tests shorten it)."""
        self.frames = 0
        """Snapshots rendered so far (tests wait on it instead of sleeping)."""
        self.skipped_refreshes = 0
        """Refreshes skipped because the console was paused or a modal was open."""

    # The state's fields, read (and in tests and the bench, set) on the App as before.
    @property
    def read_only(self) -> bool:
        return self.state.read_only

    @property
    def demo_dir(self) -> str | None:
        return self.state.demo_dir

    @property
    def demo_root(self) -> str | None:
        return self.state.demo_root

    @property
    def snapshot(self) -> Snapshot | None:
        return self.state.snapshot

    @snapshot.setter
    def snapshot(self, snapshot: Snapshot | None) -> None:
        self.state.snapshot = snapshot

    @property
    def paused(self) -> bool:
        return self.state.paused

    @paused.setter
    def paused(self, paused: bool) -> None:
        self.state.paused = paused

    @property
    def engine_error(self) -> str | None:
        return self.state.engine_error

    @engine_error.setter
    def engine_error(self, error: str | None) -> None:
        self.state.engine_error = error

    def get_default_screen(self) -> DashboardScreen:
        return self.dashboard

    def on_mount(self) -> None:
        self._start_engine()
        self.request_refresh()

    def on_unmount(self) -> None:
        self._listening = False
        with contextlib.suppress(Exception):
            self.monitor.remove_listener(self._on_engine_thread_event)
        if self.engine_started:
            try:
                self.monitor.stop(timeout=5.0)
            except Exception as exc:  # shutting down: report, never raise
                self.log.error(f"stopping the engine failed: {exc!r}")

    # -- the engine ------------------------------------------------------------
    @work(thread=True, exit_on_error=False, group="engine", description="start the engine")
    def _start_engine(self) -> None:
        self._listening = True
        self.monitor.add_listener(self._on_engine_thread_event)
        self.monitor.start()
        self.engine_started = True

    def _on_engine_thread_event(self, event: Event) -> None:
        """Runs on an engine thread: hand over, touch nothing."""
        if self._listening:
            self.post_message(EngineEvent(event))

    def on_engine_event(self, message: EngineEvent) -> None:
        event = message.event
        if is_critical(event):
            self._alert(event.kind.replace("_", " "), text.clean(event.message) or event.kind)
        elif event.kind == EventKind.ACK_LIFTED:  # acknowledged, but it changed: say so
            self.notify(
                text.clean(event.message),
                title="acknowledgement ended",
                severity="warning",
                markup=False,
            )
        self.request_refresh()

    def _alert(self, title: str, body: str) -> None:
        """An error toast (and the bell when ``sound`` is on), at most a few per window.

        A crash storm would otherwise bury an 80x24 screen under toasts; the ones
        held back are counted in the next toast, and all of them are in the timeline.
        """
        now = time.monotonic()
        while self._alerts and now - self._alerts[0] > ALERT_WINDOW:
            self._alerts.popleft()
        if len(self._alerts) >= ALERTS_PER_WINDOW:
            self._held_alerts += 1
            return
        if self._held_alerts:
            title = f"{title} (+{self._held_alerts} more, see the timeline)"
            self._held_alerts = 0
        self._alerts.append(now)
        self.notify(body, title=title, severity="error", timeout=ALERT_WINDOW, markup=False)
        if self.monitor.config.sound:
            self.bell()

    # -- the refresh loop ------------------------------------------------------
    def set_paused(self, paused: bool) -> None:
        self.paused = paused
        self.notify("Live refresh paused" if paused else "Live refresh resumed", timeout=2)
        self.dashboard.show_header()
        if not paused:
            self.request_refresh()

    def on_pause_requested(self, message: PauseRequested) -> None:
        self.set_paused(message.paused)

    def on_refresh_requested(self, message: RefreshRequested) -> None:
        self.request_refresh()

    def _blocked(self) -> bool:
        return self.paused or self.screen is not self.dashboard

    def _shutting_down(self) -> bool:
        try:
            return not self.is_running or not self.screen_stack
        except ScreenStackError:
            return True

    def request_refresh(self) -> None:
        """Collect a snapshot now, unless one is being collected, or refresh is blocked."""
        if self._shutting_down():
            return
        if self._collecting:
            self._again = True
            return
        if self._blocked():
            self.skipped_refreshes += 1
            self._arm(self.refresh_interval)
            return
        self._collecting = True
        self._again = False
        if self._timer is not None:
            self._timer.stop()
            self._timer = None
        self._collect()

    def _arm(self, delay: float) -> None:
        if self._timer is not None:
            self._timer.stop()
        self._timer = self.set_timer(delay, self.request_refresh, name="ohm-refresh")

    @work(
        thread=True,
        exclusive=True,
        exit_on_error=False,
        group="health",
        description="collect snapshot",
    )
    def _collect(self) -> None:
        snapshot = self.monitor.snapshot()
        # The agents table's rows, cells and order are built here too, off the UI thread.
        self.post_message(SnapshotReady(snapshot, self.dashboard.prepare(snapshot)))

    def on_snapshot_ready(self, message: SnapshotReady) -> None:
        if self._shutting_down():
            return
        snapshot = message.snapshot
        previous = self.snapshot
        self.snapshot = snapshot
        self.frames += 1
        self.engine_error = None
        for problem in snapshot.errors:  # the header has room for a line: the toast has it all
            if problem not in self._known_errors:
                self._alert("engine", text.clean(problem))
        self._known_errors = set(snapshot.errors)
        if snapshot.report.status == "critical" and (
            previous is None or previous.report.status != "critical"
        ):
            cause = headline.headline(snapshot.report) or "see the header and the timeline"
            self._alert("critical", f"Health is CRITICAL: {text.clean(cause)}. a acknowledges it.")
        if self.dashboard.ready:  # else the dashboard draws it when it has mounted
            self.dashboard.show_snapshot(snapshot, message.agents)

    @on(Worker.StateChanged)
    def _worker_state(self, event: Worker.StateChanged) -> None:
        worker = event.worker
        state = event.state
        if state not in (WorkerState.SUCCESS, WorkerState.ERROR, WorkerState.CANCELLED):
            return
        if worker.group == "health":
            self._collecting = False
            if state == WorkerState.ERROR:
                self._engine_failed("snapshot failed", worker.error)
            self._arm(SOON if self._again else self.refresh_interval)
        elif worker.group == "engine" and state == WorkerState.ERROR:
            self._engine_failed("engine did not start", worker.error)
        elif state == WorkerState.ERROR:
            self._engine_failed(worker.description or worker.name, worker.error)

    def _engine_failed(self, what: str, error: BaseException | None) -> None:
        """Errors show in the header and the log; the console keeps running."""
        detail = f"{type(error).__name__}: {error}" if error is not None else "unknown error"
        message = f"{what}: {detail}"
        if message != self.engine_error:
            self._alert("engine", message)
        self.engine_error = message
        self.log.error(message)
        self.dashboard.show_header()

    # -- app-wide actions -------------------------------------------------------
    def action_help(self) -> None:
        if isinstance(self.screen, HelpScreen):
            return
        self.push_screen(HelpScreen(help_sections(self, self.state)))

    def on_bug_form_requested(self, message: BugFormRequested) -> None:
        config = self.monitor.config
        if message.crash is not None:
            self.dashboard.open_bug_form(draft_from_crash(message.crash, config))
        elif message.agent is not None:
            self.dashboard.open_bug_form(draft_from_agent(message.agent, config))


def _path_of(demo: object | None, name: str) -> str | None:
    value = getattr(demo, name, None) if demo is not None else None
    return str(value) if isinstance(value, (str, Path)) else None


def make_app(
    monitor: OrchestratorHealthMonitor,
    *,
    read_only: bool = False,
    demo: object | None = None,
) -> OhmApp:
    """The console over ``monitor``, as the CLI and the tests build it.

    The app owns the monitor's background engine: it calls ``monitor.start()`` on
    mount and ``monitor.stop()`` on exit. ``read_only`` also turns auto-fix off and
    makes the console refuse every action (the monitor's own ``read_only`` is fixed
    when it is made: open it read-only for a store that is never written). ``demo`` is the
    running demo session, if any (shown in the header; its lifetime is the caller's).
    """
    if read_only:
        monitor.auto_fix = False
    return OhmApp(monitor, read_only=read_only, demo=demo)


def run_console(monitor: OrchestratorHealthMonitor, read_only: bool = False) -> int:
    """Run the console in the terminal; the exit status for the CLI."""
    app = make_app(monitor, read_only=read_only)
    result = app.run()
    if app.return_code not in (None, 0):
        return app.return_code
    return result if isinstance(result, int) else 0
