"""The main screen: header strip, agents, crash timeline and bugs, and every key for them.

Bindings live here rather than on the App so that detail screens (which have
their own ``q`` / ``c`` / ``b``) never trigger a fix on the overview behind them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Container
from textual.events import ScreenResume
from textual.screen import Screen
from textual.widgets import DataTable, Footer

from ohm_tui.engine import timeutil
from ohm_tui.engine.detect import acks, headline
from ohm_tui.engine.model import ActionResult, AgentView, Issue, RespawnPlan, Snapshot
from ohm_tui.tui import text
from ohm_tui.tui.agents_model import AgentsFrame, AgentsModel
from ohm_tui.tui.agents_panel import AgentsPanel
from ohm_tui.tui.agents_table import AgentsTable
from ohm_tui.tui.bugs_panel import BugsPanel
from ohm_tui.tui.commands import PaletteEntry
from ohm_tui.tui.header import HeaderState, HeaderStrip
from ohm_tui.tui.layout import Panes
from ohm_tui.tui.messages import ActionDone, PauseRequested, RefreshRequested
from ohm_tui.tui.screens.agent_detail import AgentDetailScreen
from ohm_tui.tui.screens.bug_detail import BugDetailScreen
from ohm_tui.tui.screens.bug_form import (
    BugDraft,
    BugFormScreen,
    draft_from_agent,
    draft_from_crash,
)
from ohm_tui.tui.screens.confirm import ConfirmScreen
from ohm_tui.tui.screens.crash_detail import CrashDetailScreen
from ohm_tui.tui.screens.issues import IssuesScreen
from ohm_tui.tui.state import ConsoleState
from ohm_tui.tui.timeline_panel import TimelinePanel

# Changes, by what the read-only toast calls them ("read-only: respawn is disabled").
MUTATING = {
    "respawn": "respawn",
    "stop": "stop",
    "clean_zombies": "zombie cleanup",
    "file_bug": "filing bugs",
    "toggle_auto_fix": "auto-fix",
    "ack": "acknowledging",
}
NEEDS_AGENT = {"respawn", "stop", "log"}
# An era-3 session runs inside the orchestrator: ohm has no process of its own to act on.
NEVER_SESSIONS = {"respawn", "stop"}
SESSION_REFUSAL = "a session is a thread of the orchestrator: never respawned or signalled"
PANELS = {"agents": "#agents-table", "timeline": "#crashes-table", "bugs": "#bugs-table"}


class DashboardScreen(Screen[None]):
    """The overview. Fixes run in thread workers; results arrive as ``ActionDone``."""

    BINDINGS = [
        # Listed first so the footer keeps "? Help" visible at 80 columns.
        Binding("question_mark", "app.help", "Help", id="help.dashboard", tooltip="Show every key"),
        Binding(
            "1",
            "focus_panel('agents')",
            "Agents",
            id="focus.agents",
            show=False,
            tooltip="Focus the agents table",
        ),
        Binding(
            "2",
            "focus_panel('timeline')",
            "Crashes",
            id="focus.timeline",
            show=False,
            tooltip="Focus the crash timeline",
        ),
        Binding(
            "3",
            "focus_panel('bugs')",
            "Bugs",
            id="focus.bugs",
            show=False,
            tooltip="Focus the bug list",
        ),
        Binding(
            "enter",
            "details",
            "Details",
            id="details",
            show=False,
            tooltip="Open the selected agent, crash or bug",
        ),
        Binding(
            "r",
            "respawn",
            "Respawn",
            id="agent.respawn",
            tooltip=(
                "Respawn the selected agent, or the selected crash's"
                " (shows what will run, then asks)"
            ),
        ),
        Binding(
            "k",
            "stop",
            "Stop",
            id="agent.stop",
            tooltip="Stop the selected agent, or the selected crash's: SIGTERM, then SIGKILL",
        ),
        Binding(
            "z",
            "clean_zombies",
            "Zombies",
            id="zombies.clean",
            show=False,  # the 80-column footer keeps enter and s instead (all are in ?)
            tooltip="List zombies and stale entries, then reap and clean them",
        ),
        Binding(
            "b",
            "file_bug",
            "Bug",
            id="bug.file",
            tooltip="File a bug (prefilled from the selected crash or agent)",
        ),
        Binding(
            "l",
            "log",
            "Log",
            id="agent.log",
            show=False,
            tooltip="Follow the log of the selected agent, or of the selected crash's",
        ),
        Binding(
            "a",
            "ack",
            "Ack",
            id="issue.ack",
            tooltip="Acknowledge the selected agent's or crash's issue (else pick one from a list)",
        ),
        Binding(
            "i",
            "issues",
            "Issues",
            id="issues.show",
            show=False,
            tooltip="The issues behind the status; acknowledge one, or take it back",
        ),
        Binding(
            "slash",
            "filter",
            "Filter",
            id="agents.filter",
            tooltip="Filter agents by type, task or status",
        ),
        Binding("s", "sort", "Sort", id="agents.sort", tooltip="Cycle the agents sort column"),
        Binding(
            "S",
            "reverse_sort",
            "Reverse sort",
            id="agents.reverse_sort",
            show=False,
            tooltip="Reverse the agents sort (▲ ascending, ▼ descending in the column label)",
        ),
        Binding(
            "p",
            "pause",
            "Pause",
            id="refresh.pause",
            show=False,
            tooltip="Pause or resume live refresh",
        ),
        Binding(
            "f",
            "toggle_auto_fix",
            "Auto-fix",
            id="autofix.toggle",
            tooltip="Turn automatic fixes on or off",
        ),
        Binding(
            "escape",
            "clear_filter",
            "Clear filter",
            id="agents.clear_filter",
            show=False,
            tooltip="Clear the agents filter",
        ),
        Binding(
            "q", "quit", "Quit", id="quit", tooltip="Quit ohm (the orchestrator keeps running)"
        ),
        # Reached only when the key's own action above is greyed out (Textual tries the
        # next binding of a key whose action is disabled): a toast says why, never silence.
        *(
            Binding(key, f"refuse('{action}')", show=False, system=True)
            for key, action in (
                ("r", "respawn"),
                ("k", "stop"),
                ("l", "log"),
                ("z", "clean_zombies"),
                ("b", "file_bug"),
                ("f", "toggle_auto_fix"),
                ("a", "ack"),
            )
        ),
    ]

    EXTRA_COMMANDS = [
        PaletteEntry("Help", "Show every key", "app.help"),
    ]

    def __init__(self, state: ConsoleState) -> None:
        super().__init__(id="dashboard")
        self.state = state
        """What this screen draws (the App writes it; see ``ohm_tui.tui.state``)."""
        self.ready = False
        """True once the panels exist: frames that arrive earlier wait for it."""
        self._had_agent = (False, False)
        """(an agent to act on, it is a session): what r / k / l depend on, last shown."""
        self.agents_model = AgentsModel()
        """The agents table's rows, built by the snapshot worker (``prepare``)."""
        self._prepared: tuple[Snapshot, AgentsFrame] | None = None
        self._follow: tuple[str | None, int | None, int] | None = None
        """(key, pid, frames left) of a run a manual respawn just started: the agents
        table's cursor goes to it when its row arrives (a few frames at most)."""

    def compose(self) -> ComposeResult:
        yield HeaderStrip(id="header")
        with Panes(id="panes"):
            yield AgentsPanel(self.agents_model, id="agents")
            with Container(id="lower"):
                yield TimelinePanel(id="timeline")
                yield BugsPanel(id="bugs")
        yield Footer(compact=True, show_command_palette=False)  # ctrl+p is in the help

    def on_mount(self) -> None:
        self.query_one("#agents-table").focus()
        self.ready = True
        self.show_header()
        snapshot = self.state.snapshot
        if snapshot is not None:  # a frame that came before the panels: its rows are built
            prepared = self._prepared
            frame = prepared[1] if prepared is not None and prepared[0] is snapshot else None
            self.show_snapshot(snapshot, frame)

    # -- rendering ----------------------------------------------------------
    def prepare(self, snapshot: Snapshot) -> AgentsFrame:
        """In the snapshot worker, off the UI thread: the agents table's rows and order."""
        frame = self.agents_model.prepare(snapshot.agents, timeutil.now())
        self._prepared = (snapshot, frame)
        return frame

    def show_snapshot(self, snapshot: Snapshot, agents: AgentsFrame | None = None) -> None:
        """Render one snapshot into every panel (rows diffed, never rebuilt); ``agents``
        is what ``prepare`` built for it in the worker."""
        now = timeutil.now()
        panel = self.query_one(AgentsPanel)
        if agents is None:
            panel.show_agents(snapshot.agents, now)
        else:
            panel.show_frame(agents)
        self.query_one(TimelinePanel).show_snapshot(snapshot, now)
        self.query_one(BugsPanel).show_bugs(snapshot.bugs, snapshot.open_bugs, now)
        self.query_one(Panes).fit()
        self._follow_new_run()
        self.show_header()
        self._refresh_agent_keys()

    def _follow_new_run(self) -> None:
        """Put the agents table's cursor on the run a respawn started, once it is listed,
        so the operator stays on the task they acted on (not on whatever row took the
        old run's place)."""
        if self._follow is None:
            return
        key, pid, left = self._follow
        panel = self.query_one(AgentsPanel)
        frame = panel.frame
        if frame is not None and (key is None or key not in frame.index) and pid is not None:
            key = next((k for k in frame.order if frame.rows[k].agent.pid == pid and k != key), key)
        if key is not None and panel.table.move_to_key(key):
            self._follow = None
        else:
            self._follow = (key, pid, left - 1) if left > 1 else None

    def _refresh_agent_keys(self) -> None:
        """Grey out or enable r / k / l when what they depend on changed, and only then:
        refreshing the bindings rebuilds the footer, tens of ms on every cursor move."""
        agent = self.target_agent
        state = (agent is not None, agent is not None and agent.source == "session")
        if state != self._had_agent:
            self._had_agent = state
            self.refresh_bindings()

    def show_header(self) -> None:
        if not self.ready:
            return
        state = self.state
        errors = [state.engine_error] if state.engine_error else []
        self.query_one(HeaderStrip).show(
            HeaderState(
                snapshot=state.snapshot,
                paused=state.paused,
                read_only=state.read_only,
                auto_fix=state.monitor.auto_fix,
                demo=state.demo,
                demo_dir=state.demo_dir,
                freeze_threshold=state.monitor.config.orchestrator_freeze_threshold,
                errors=errors,
            )
        )

    def on_screen_resume(self, event: ScreenResume) -> None:
        # Back from a modal or a detail screen: catch up at once.
        self.post_message(RefreshRequested())

    # -- selection ----------------------------------------------------------
    @property
    def selected_agent(self) -> AgentView | None:
        return self.query_one(AgentsPanel).selected

    @property
    def target_agent(self) -> AgentView | None:
        """The agent ``r`` / ``k`` / ``l`` act on: the focused panel's.

        From the crash timeline that is the selected crash's own run, while the
        agents table still lists it; a bug names no agent run, so from the bug list
        there is none (the keys are greyed out).
        """
        panel = self.focused_panel()
        if panel == "bugs":
            return None
        if panel == "timeline":
            crash = self.query_one(TimelinePanel).selected
            if crash is None:
                return None
            return self.query_one(AgentsPanel).agent(crash.agent_key)
        return self.selected_agent

    def focused_panel(self) -> str | None:
        focused = self.focused
        for name, selector in PANELS.items():
            if focused is not None and focused.id == selector[1:]:
                return name
        return None

    @on(DataTable.RowHighlighted)
    @on(AgentsTable.Highlighted)
    def _highlighted(self) -> None:
        self._refresh_agent_keys()

    @on(DataTable.RowSelected)
    @on(AgentsTable.Selected)
    def _selected(self, event: DataTable.RowSelected | AgentsTable.Selected) -> None:
        event.stop()
        self.action_details()

    def why_not(self, action: str) -> str | None:
        """Why ``action`` cannot run now (its key is greyed out), or ``None`` if it can."""
        if action in MUTATING and self.state.read_only:
            return f"read-only: {MUTATING[action]} is disabled"
        if action in NEEDS_AGENT and self.target_agent is None:
            what = action if action != "log" else "the log"
            panel = self.focused_panel()
            if panel == "bugs":
                return f"No agent for {what}: a bug is not an agent run (pick an agent or a crash)"
            if panel == "timeline":
                if self.query_one(TimelinePanel).selected is None:
                    return f"No agent for {what}: no crash selected"
                return f"No agent for {what}: this crash's run is no longer listed"
            return f"No agent for {what}: no agent selected"
        if action in NEVER_SESSIONS:
            agent = self.target_agent
            if agent is not None and agent.source == "session":
                return SESSION_REFUSAL
        return None

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "refuse":  # the toast behind a greyed-out key
            return bool(parameters) and self.why_not(str(parameters[0])) is not None
        if self.why_not(action) is not None:
            return None
        if action == "clear_filter":
            return self.query_one(AgentsPanel).filter_active
        return True

    def action_refuse(self, action: str) -> None:
        """Say why a greyed-out key did nothing."""
        reason = self.why_not(action)
        if reason is not None:
            self.notify(reason, severity="warning", timeout=3, markup=False)

    # -- navigation and views -----------------------------------------------
    def action_focus_panel(self, name: str) -> None:
        self.query_one(PANELS[name]).focus()

    def action_details(self) -> None:
        panel = self.focused_panel() or "agents"
        monitor = self.state.monitor
        read_only = self.state.read_only
        if panel == "timeline":
            crash = self.query_one(TimelinePanel).selected
            if crash is not None:
                self.app.push_screen(CrashDetailScreen(crash, read_only=read_only))
        elif panel == "bugs":
            bug = self.query_one(BugsPanel).selected
            if bug is not None:
                self.app.push_screen(BugDetailScreen(monitor, bug, read_only=read_only))
        else:
            agent = self.selected_agent
            if agent is not None:
                self.app.push_screen(AgentDetailScreen(monitor, agent))

    def action_log(self) -> None:
        agent = self.target_agent
        if agent is not None:
            self.app.push_screen(AgentDetailScreen(self.state.monitor, agent, log_only=True))

    def action_issues(self) -> None:
        self.app.push_screen(IssuesScreen(self.state))

    def selected_issue(self) -> Issue | None:
        """The issue of the selected agent row or crash row (what ``a`` acknowledges)."""
        snapshot = self.state.snapshot
        if snapshot is None:
            return None
        issues = snapshot.report.issues
        panel = self.focused_panel() or "agents"
        if panel == "timeline":
            crash = self.query_one(TimelinePanel).selected
            if crash is not None:
                return acks.issue_for_agent(
                    issues, crash.agent_key, crash.agent_type, crash.task_id
                )
        elif panel == "agents" and self.selected_agent is not None:
            a = self.selected_agent
            return acks.issue_for_agent(issues, a.key, a.agent_type, a.task_id)
        return None

    def action_ack(self) -> None:
        issue = self.selected_issue()
        if issue is None:  # nothing selected stands for an issue: choose from the list
            self.action_issues()
            return
        words = headline.words(issue)
        if issue.ack is not None:
            self.notify(
                f"Already acknowledged by {issue.ack.by}: {words}. "
                "i lists the issues; u there takes it back.",
                title="acknowledge",
                markup=False,
            )
            return
        ref = issue.issue_id or acks.issue_id(issue)
        monitor = self.state.monitor

        def ack() -> ActionResult:
            done = monitor.acknowledge(ref)
            until = "until it changes" if done.until is None else "for a while"
            return ActionResult(True, "acknowledge", f"Acknowledged {words} {until}")

        self._fix("acknowledge", ack)

    def action_filter(self) -> None:
        self.query_one(AgentsPanel).open_filter()
        self.call_after_refresh(self.query_one(Panes).fit)  # the input takes a line

    def action_clear_filter(self) -> None:
        self.query_one(AgentsPanel).close_filter(clear=True)
        self.refresh_bindings()

    def action_sort(self) -> None:
        label = self.query_one(AgentsPanel).cycle_sort()
        self.notify(f"Agents sorted by {label} (S reverses)", timeout=2)

    def action_reverse_sort(self) -> None:
        label = self.query_one(AgentsPanel).reverse_sort()
        self.notify(f"Agents sorted by {label}", timeout=2)

    def action_pause(self) -> None:
        self.post_message(PauseRequested(not self.state.paused))

    def action_toggle_auto_fix(self) -> None:
        monitor = self.state.monitor
        monitor.auto_fix = not monitor.auto_fix
        self.notify(f"Auto-fix {'ON' if monitor.auto_fix else 'OFF'}")
        self.show_header()

    def action_quit(self) -> None:
        self.app.exit(0)

    # -- fixes ----------------------------------------------------------------
    def action_respawn(self) -> None:
        agent = self.target_agent
        if agent is None:
            return
        monitor = self.state.monitor

        def confirm(plan: RespawnPlan) -> None:
            # A live agent is a restart: the plan stops it first, and the dialog says so.
            verb = "Restart" if plan.restart else "Respawn"
            body = Text(f"{verb} {agent.agent_type} PID {agent.pid}")
            body.append(f" (task {text.clean(agent.task_id or '-')})\n\n")
            if not plan.restart:
                body.append("Will run:\n")
            body.append_text(text.literal(plan.text))
            self._ask(
                f"{verb} agent",
                body,
                verb,
                lambda: self._fix("respawn", lambda: monitor.respawn(agent.key)),
            )

        self._prepare("respawn", lambda: monitor.respawn_plan(agent.key), confirm)

    def action_stop(self) -> None:
        agent = self.target_agent
        if agent is None:
            return
        monitor = self.state.monitor
        grace = monitor.config.stop_grace_period
        body = Text(f"Stop {agent.agent_type} PID {agent.pid}")
        body.append(f" (task {text.clean(agent.task_id or '-')})?\n\n")
        body.append(f"Sends SIGTERM, then SIGKILL if it is still running after {grace:g}s.\n")
        body.append("Command: ")
        body.append_text(text.literal(agent.command_text))
        self._ask(
            "Stop agent",
            body,
            "Stop",
            lambda: self._fix("stop", lambda: monitor.stop_agent(agent.key)),
        )

    def action_clean_zombies(self) -> None:
        monitor = self.state.monitor

        def confirm(plan: list[str]) -> None:
            if not plan:
                self.notify("Nothing to clean: no zombies and no stale entries.")
                return
            body = Text(f"{text.count(len(plan), 'thing')} will be reaped or cleaned:\n\n")
            for line in plan:
                body.append("• ")
                body.append_text(text.literal(line))
                body.append("\n")
            self._ask(
                "Clean zombies",
                body,
                "Clean",
                lambda: self._fix("clean_zombies", monitor.clean_zombies),
            )

        self._prepare("clean_zombies", monitor.plan_zombie_cleanup, confirm)

    def action_file_bug(self) -> None:
        config = self.state.monitor.config
        draft = BugDraft(assigned_to=config.default_assignee)
        panel = self.focused_panel()
        if panel == "timeline":
            crash = self.query_one(TimelinePanel).selected
            if crash is not None:
                draft = draft_from_crash(crash, config)
        elif panel == "agents" and self.selected_agent is not None:
            draft = draft_from_agent(self.selected_agent, config)
        self.open_bug_form(draft)

    def open_bug_form(self, draft: BugDraft) -> None:
        if self.state.read_only:
            self.notify(self.why_not("file_bug") or "", severity="warning", markup=False)
            return
        monitor = self.state.monitor

        def filed(result: BugDraft | None) -> None:
            if result is None:
                return

            def file() -> ActionResult:
                bug = monitor.file_bug(
                    result.title,
                    result.priority,
                    result.description,
                    assigned_to=result.assigned_to or None,
                    category="manual",
                    related=result.related,
                )
                return ActionResult(
                    ok=True,
                    action="file_bug",
                    message=f"Filed {bug.label}: {text.one_line(text.clean(bug.title), 60)}",
                    bug_number=bug.bug_number,
                )

            self._fix("file_bug", file)

        self.app.push_screen(BugFormScreen(draft), callback=filed)

    def _ask(self, title: str, body: Text, label: str, then: Callable[[], object]) -> None:
        def answered(yes: bool | None) -> None:
            if yes:
                then()

        self.app.push_screen(ConfirmScreen(title, body, confirm_label=label), callback=answered)

    @work(thread=True, exit_on_error=False, group="actions", description="prepare a fix")
    def _prepare(self, what: str, compute: Callable[[], Any], then: Callable[[Any], None]) -> None:
        """Compute what a fix would do off the UI thread, then ask on the UI thread."""
        try:
            value = compute()
        except Exception as exc:
            message = f"{what} not possible: {type(exc).__name__}: {exc}"
            self.post_message(ActionDone(ActionResult(ok=False, action=what, message=message)))
        else:
            self.app.call_from_thread(then, value)

    @work(thread=True, exit_on_error=False, group="actions", description="run a fix")
    def _fix(self, what: str, run: Callable[[], ActionResult]) -> None:
        """Run a fix off the UI thread so a slow stop or spawn never freezes the screen."""
        try:
            result = run()
        except Exception as exc:
            message = f"{what} failed: {type(exc).__name__}: {exc}"
            result = ActionResult(ok=False, action=what, message=message)
        self.post_message(ActionDone(result))

    def on_action_done(self, message: ActionDone) -> None:
        message.stop()
        result = message.result
        self.notify(
            text.clean(result.message) or result.action,
            title=result.action.replace("_", " "),
            severity="information" if result.ok else "error",
            markup=False,
        )
        if result.ok and result.action in ("respawn", "restart") and result.new_pid is not None:
            self._follow = (result.agent_key, result.new_pid, 10)
        self.post_message(RefreshRequested())
