"""The console driven with ``run_test`` over a real monitor, a real state dir and real
agent processes that really crash (see ``conftest.py``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from rich.syntax import Syntax
from textual.binding import Binding
from textual.message import Message
from textual.widgets import Input, Log, Static

from ohm_tui.engine.monitor import OrchestratorHealthMonitor
from ohm_tui.tui import text
from ohm_tui.tui.agents_table import AgentsTable
from ohm_tui.tui.app import OhmApp, make_app
from ohm_tui.tui.commands import entries_for
from ohm_tui.tui.dashboard import DashboardScreen
from ohm_tui.tui.header import HeaderStrip
from ohm_tui.tui.keyed_table import KeyedTable
from ohm_tui.tui.messages import ActionDone, EngineEvent, SnapshotReady
from ohm_tui.tui.screens.agent_detail import AgentDetailScreen
from ohm_tui.tui.screens.bug_detail import BugDetailScreen
from ohm_tui.tui.screens.bug_form import BugFormScreen
from ohm_tui.tui.screens.confirm import ConfirmScreen
from ohm_tui.tui.screens.crash_detail import CrashDetailScreen
from ohm_tui.tui.screens.help import HelpScreen
from ohm_tui.tui.timeline_panel import TimelinePanel
from tests.tui.conftest import EVIL_LINE, StateDir, wait_for

SIZE = (120, 40)


def console(monitor: OrchestratorHealthMonitor, **kw: Any) -> OhmApp:
    """``make_app`` as the CLI calls it, refreshing 5x a second so tests stay quick."""
    app = make_app(monitor, **kw)
    app.refresh_interval = 0.2
    return app


def table(app: OhmApp, table_id: str) -> Any:
    """A keyed table, or the agents table (the same ``keys`` / ``cell_text`` / cursor)."""
    cls = AgentsTable if table_id == "agents-table" else KeyedTable
    return app.dashboard.query_one(f"#{table_id}", cls)


def rendered(widget: Any) -> str:
    """What a line-API widget (DataTable, Log) actually draws, line by line."""
    height = widget.size.height
    return "\n".join(widget.render_line(y).text for y in range(height))


def header_text(app: OhmApp) -> str:
    return str(app.dashboard.query_one(HeaderStrip).content)


def crash_rows(app: OhmApp) -> list[str]:
    return table(app, "crashes-table").keys


def agent_pids(app: OhmApp) -> set[int]:
    t = table(app, "agents-table")
    return {int(t.cell_text(key, "pid")) for key in t.keys}


def watched(monitor: OrchestratorHealthMonitor, pid: int) -> bool:
    """The engine's death watch covers ``pid``.

    The engine arms it after its first check; a death before that is seen at the
    next periodic check (30 s here), which this test must not wait for. The engine
    has no public "armed" signal, hence the private attribute.
    """
    watcher = getattr(monitor, "_watcher", None)
    return watcher is not None and pid in watcher.watching()


class Recorder:
    """``run_test(message_hook=...)``: every message the app processed, for assertions."""

    def __init__(self) -> None:
        self.messages: list[Message] = []

    def __call__(self, message: Message) -> None:
        self.messages.append(message)

    def of(self, kind: type[Message]) -> list[Any]:
        return [m for m in self.messages if isinstance(m, kind)]


async def test_crash_appears_in_the_timeline_within_a_second(state_dir: StateDir) -> None:
    agent = state_dir.start_agent("architect", "spec-20")
    other = state_dir.start_agent("code_developer", "impl-7")
    monitor = state_dir.monitor(health_check_interval=30.0)  # only the event path is fast
    app = console(monitor)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: {agent.pid, other.pid} <= agent_pids(app), message="rows")
        await wait_for(pilot, lambda: watched(monitor, agent.pid), message="death watch armed")
        assert crash_rows(app) == []
        crashed_at = time.monotonic()
        agent.crash()
        await wait_for(pilot, lambda: crash_rows(app), timeout=5, message="crash row")
        elapsed = time.monotonic() - crashed_at
        crashes = table(app, "crashes-table")
        (key,) = crashes.keys
        assert crashes.cell_text(key, "error") == "ImportError"
        assert "SkillNames" in crashes.cell_text(key, "message")
        assert crashes.cell_text(key, "agent") == "architect"
        assert app.dashboard.query_one(TimelinePanel).crashes[key].agent_pid == agent.pid
        assert crashes.cell_text(key, "task") == "spec-20"
        # A clock time: it tells crashes apart and never ticks (not "3 seconds ago").
        crash_ts = app.dashboard.query_one(TimelinePanel).crashes[key].crashed_at
        assert crashes.cell_text(key, "when") == text.clock(crash_ts)
        # The event path, not the 30 s periodic check, put it there: typically 0.1-0.3 s;
        # the bound leaves room for a loaded CI machine.
        print(f"crash on screen {elapsed:.3f}s after it happened")
        assert elapsed < 3.0, f"crash took {elapsed:.2f}s to show"
        agents = table(app, "agents-table")
        await wait_for(
            pilot,
            # "crashed (exit 1)" when a check read the exit status of the zombie
            lambda: agents.cell_text(agent.key, "status").startswith("crashed"),
            message="agent row shows crashed",
        )
        assert agents.cell_text(other.key, "status") == "running"


async def test_r_respawns_the_selected_agent_and_the_new_pid_shows(state_dir: StateDir) -> None:
    agent = state_dir.start_agent("architect", "spec-20")
    state_dir.start_agent("code_developer", "impl-7")
    monitor = state_dir.monitor()
    recorder = Recorder()
    app = console(monitor)
    async with app.run_test(size=SIZE, message_hook=recorder) as pilot:
        agents = table(app, "agents-table")
        await wait_for(pilot, lambda: agent.key in agents.keys, message="agent row")
        agent.crash()
        await wait_for(
            pilot,
            # "crashed (exit 1)" when a check read the exit status while it was a zombie
            lambda: agents.cell_text(agent.key, "status").startswith("crashed"),
            message="crashed row",
        )
        assert agents.move_to_key(agent.key)
        await pilot.press("r")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), message="confirm")
        body = str(app.screen.query_one("#confirm-body", Static).content)
        assert monitor.describe_respawn(agent.key) in body  # exactly what will run
        await pilot.press("y")
        await wait_for(pilot, lambda: recorder.of(ActionDone), message="respawn finished")
        (done,) = recorder.of(ActionDone)
        result = done.result
        assert result.ok, result.message
        assert result.new_pid is not None and result.new_pid != agent.pid
        await wait_for(pilot, lambda: result.new_pid in agent_pids(app), message="new pid row")
        assert str(result.new_pid) in state_dir.read_state()["active_agents"]


async def test_k_stops_the_selected_agent_after_confirming(state_dir: StateDir) -> None:
    keep = state_dir.start_agent("architect", "spec-20")
    target = state_dir.start_agent("code_developer", "impl-7")
    recorder = Recorder()
    app = console(state_dir.monitor())
    async with app.run_test(size=SIZE, message_hook=recorder) as pilot:
        agents = table(app, "agents-table")
        await wait_for(pilot, lambda: {keep.key, target.key} <= set(agents.keys), message="rows")
        assert agents.move_to_key(target.key)
        await pilot.press("k")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), message="confirm")
        body = str(app.screen.query_one("#confirm-body", Static).content)
        assert f"PID {target.pid}" in body and "SIGTERM" in body and "SIGKILL" in body
        await pilot.press("n")  # no: nothing happens
        await wait_for(pilot, lambda: app.screen is app.dashboard)
        assert target.popen.poll() is None and not recorder.of(ActionDone)
        await pilot.press("k")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), message="confirm")
        await pilot.press("y")
        await wait_for(pilot, lambda: recorder.of(ActionDone), message="stop finished")
        (done,) = recorder.of(ActionDone)
        assert done.result.ok, done.result.message
        await wait_for(pilot, lambda: target.popen.poll() is not None, message="agent ended")
        assert keep.popen.poll() is None  # only the selected one


async def test_z_lists_exactly_the_plan_and_cleans_stale_entries(state_dir: StateDir) -> None:
    live = state_dir.start_agent("architect", "spec-20")
    dead = [state_dir.add_dead_entry("code_developer", f"impl-{n}") for n in range(3)]
    monitor = state_dir.monitor()
    app = console(monitor)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: live.pid in agent_pids(app), message="rows")
        plan = OrchestratorHealthMonitor(state_dir.config(), read_only=True).plan_zombie_cleanup()
        assert len(plan) >= 1
        await pilot.press("z")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), message="confirm")
        body = str(app.screen.query_one("#confirm-body", Static).content)
        for line in plan:
            assert line in body
        await pilot.press("y")

        def cleaned() -> bool:
            doc = state_dir.read_state()
            return set(doc["active_agents"]) == {str(live.pid)}

        await wait_for(pilot, cleaned, message="stale entries removed from the state file")
        completed = {int(e["pid"]) for e in state_dir.read_state()["completed_agents"]}
        assert set(dead) <= completed
        assert live.popen.poll() is None  # the live agent is untouched


async def test_b_files_a_bug_prefilled_from_the_selected_crash(state_dir: StateDir) -> None:
    agent = state_dir.start_agent("architect", "spec-20")
    monitor = state_dir.monitor()
    app = console(monitor)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: agent.pid in agent_pids(app), message="agent row")
        agent.crash()
        await wait_for(pilot, lambda: crash_rows(app), message="crash row")
        await pilot.press("2", "b")
        await wait_for(pilot, lambda: isinstance(app.screen, BugFormScreen), message="form")
        form = app.screen
        title = form.query_one("#bug-title", Input)
        assert "architect crashes with ImportError" in title.value
        assert form.query_one("#bug-assignee", Input).value == "code_developer"
        title.value = "Filed in the console: SkillNames"
        await pilot.press("ctrl+s")
        bugs = table(app, "bugs-table")
        await wait_for(pilot, lambda: bugs.keys, message="bug row")
        (key,) = bugs.keys
        assert bugs.cell_text(key, "title") == title.value
        assert bugs.cell_text(key, "priority") == "High"  # ImportError -> High by the mapping
    # Another monitor on the same directory, and the CLI, see it too.
    (bug,) = OrchestratorHealthMonitor(state_dir.config(), read_only=True).bugs()
    assert bug.title == "Filed in the console: SkillNames"
    assert bug.category == "manual"
    out = subprocess.run(
        [str(Path(sys.executable).parent / "ohm"), "bugs", "--data-dir", str(state_dir.data)],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
        env={**os.environ, "COLUMNS": "200"},
    ).stdout
    assert bug.label in out and "Filed in the console" in out


async def test_filter_narrows_the_agents_and_escape_clears_it(state_dir: StateDir) -> None:
    architect = state_dir.start_agent("architect", "spec-20")
    developer = state_dir.start_agent("code_developer", "impl-7")
    reviewer = state_dir.start_agent("code-reviewer", "review-3")
    app = console(state_dir.monitor())
    async with app.run_test(size=SIZE) as pilot:
        agents = table(app, "agents-table")
        every = {architect.key, developer.key, reviewer.key}
        await wait_for(pilot, lambda: set(agents.keys) == every, message="all rows")
        await pilot.press("slash")
        assert isinstance(app.focused, Input) and app.focused.id == "agents-filter"
        await pilot.press(*"code")
        await wait_for(pilot, lambda: set(agents.keys) == {developer.key, reviewer.key})
        await pilot.press("enter")  # keep the filter, back to the table
        assert app.focused is not None and app.focused.id == "agents-table"
        await wait_for(pilot, lambda: app.frames >= 3)
        assert set(agents.keys) == {developer.key, reviewer.key}  # survives refreshes
        await pilot.press("slash", "ctrl+a", "ctrl+k", *"review")  # by task
        await wait_for(pilot, lambda: set(agents.keys) == {reviewer.key})
        await pilot.press("escape")
        await wait_for(pilot, lambda: set(agents.keys) == every, message="filter cleared")
        assert "sort: problems first" in str(app.dashboard.query_one("#agents").border_title)
        await pilot.press("s")
        assert "sort: CPU" in str(app.dashboard.query_one("#agents").border_title)


async def test_pause_stops_refresh_until_resumed(state_dir: StateDir) -> None:
    agent = state_dir.start_agent("architect", "spec-20")
    monitor = state_dir.monitor()
    recorder = Recorder()
    app = console(monitor)
    async with app.run_test(size=SIZE, message_hook=recorder) as pilot:
        await wait_for(pilot, lambda: agent.pid in agent_pids(app), message="agent row")
        await pilot.press("p")
        assert app.paused and "PAUSED" in header_text(app)
        frames = app.frames
        agent.crash()
        # The engine records the crash and tells the console ...
        await wait_for(pilot, lambda: recorder.of(EngineEvent), message="engine event")
        skipped = app.skipped_refreshes
        # ... which skips refreshes while paused (waited for by count, not by time).
        await wait_for(pilot, lambda: app.skipped_refreshes >= skipped + 2)
        assert app.frames == frames
        assert crash_rows(app) == []
        await pilot.press("p")
        assert not app.paused and "PAUSED" not in header_text(app)
        await wait_for(pilot, lambda: crash_rows(app), message="crash after resume")
        assert len(recorder.of(SnapshotReady)) > frames


async def test_read_only_refuses_every_change(state_dir: StateDir) -> None:
    agent = state_dir.start_agent("architect", "spec-20")
    state_dir.add_dead_entry("code_developer", "impl-1")
    before = state_dir.state_path.read_bytes()
    monitor = OrchestratorHealthMonitor(state_dir.config(auto_fix=True), read_only=True)
    state_dir.monitors.append(monitor)
    app = console(monitor, read_only=True)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: agent.pid in agent_pids(app), message="agent row")
        assert monitor.read_only and not monitor.auto_fix
        assert "READ-ONLY" in header_text(app)
        dashboard = app.dashboard
        for action in ("respawn", "stop", "clean_zombies", "file_bug", "toggle_auto_fix"):
            assert dashboard.check_action(action, ()) is None, action  # greyed out
        palette = {entry.action for entry in entries_for(dashboard)}
        assert not palette & {"respawn", "stop", "clean_zombies", "file_bug", "toggle_auto_fix"}
        assert {"filter", "pause", "details", "sort"} <= palette
        for key in ("r", "k", "z", "b", "f"):
            await pilot.press(key)
            await pilot.pause()
            assert app.screen is dashboard, key
        assert not monitor.auto_fix
        # Nothing was changed behind the screen either.
        assert state_dir.state_path.read_bytes() == before
        assert agent.popen.poll() is None


async def test_untrusted_log_text_renders_literally(state_dir: StateDir) -> None:
    agent = state_dir.start_agent("architect", "spec-20", line=EVIL_LINE)
    app = console(state_dir.monitor())
    async with app.run_test(size=(200, 40)) as pilot:
        agents = table(app, "agents-table")
        await wait_for(
            pilot,
            lambda: agent.key in agents.keys and "link" in agents.cell_text(agent.key, "last"),
            message="last log line",
        )
        cell = agents.cell_text(agent.key, "last")
        assert cell.startswith("[bold red]x[/] [link=http://e.vil]y[/link] red")
        literal = "[bold red]x[/] [link=http://e.vil]y[/link] red"
        await wait_for(pilot, lambda: literal in rendered(agents), message="drawn literally")
        shown = rendered(agents)
        assert "\x1b" not in shown and "52;c;" not in shown and "SGVsbG8" not in shown
        agents.focus()
        assert agents.move_to_key(agent.key)
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, AgentDetailScreen))
        log = app.screen.query_one("#agent-log", Log)
        await wait_for(pilot, lambda: any("link=" in line for line in log.lines), message="log")
        lines = "\n".join(log.lines)
        assert "[bold red]x[/] [link=http://e.vil]y[/link] red" in lines
        assert "\x1b" not in lines and "\x07" not in lines
        await wait_for(pilot, lambda: literal in rendered(log), message="log drawn literally")
        assert "\x1b" not in rendered(log)
        # The command line (which holds the same text) is literal too.
        info = str(app.screen.query_one("#agent-info", Static).content)
        assert "[link=http://e.vil]" in info and "\x1b" not in info


async def test_details_crash_trace_and_bug_keys(state_dir: StateDir) -> None:
    agent = state_dir.start_agent("architect", "spec-20")
    monitor = state_dir.monitor()
    app = console(monitor)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: agent.pid in agent_pids(app), message="agent row")
        agent.crash()
        await wait_for(pilot, lambda: crash_rows(app), message="crash row")
        await pilot.press("2", "enter")
        await wait_for(pilot, lambda: isinstance(app.screen, CrashDetailScreen))
        screen = app.screen
        trace = screen.query_one("#crash-trace", Static).content
        assert isinstance(trace, Syntax)  # highlighted, never parsed as markup
        assert "Traceback (most recent call last)" in trace.code
        assert "ImportError" in str(screen.query_one("#crash-summary", Static).content)
        # b here files a bug about this crash; escape leaves the form and the screen.
        await pilot.press("b")
        await wait_for(pilot, lambda: isinstance(app.screen, BugFormScreen))
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: isinstance(app.screen, CrashDetailScreen))
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is app.dashboard)
        bugs = table(app, "bugs-table")
        await wait_for(pilot, lambda: bugs.keys, message="bug row")
        (key,) = bugs.keys
        number = int(key)
        await pilot.press("3", "enter")
        await wait_for(pilot, lambda: isinstance(app.screen, BugDetailScreen))
        await pilot.press("c")
        await wait_for(pilot, lambda: monitor.bug(number).status == "closed", message="closed")
        await pilot.press("o")
        await wait_for(pilot, lambda: monitor.bug(number).status == "open", message="reopened")
        await pilot.press("plus")
        await wait_for(pilot, lambda: monitor.bug(number).priority == "Critical")
        await pilot.press("minus", "minus")
        await wait_for(pilot, lambda: monitor.bug(number).priority == "Medium")
        await pilot.press("escape")
        await wait_for(pilot, lambda: bugs.cell_text(key, "priority") == "Medium")


async def test_rows_are_diffed_so_the_cursor_survives_refreshes(state_dir: StateDir) -> None:
    started = [state_dir.start_agent("architect", f"spec-{n}") for n in range(4)]
    app = console(state_dir.monitor())
    async with app.run_test(size=SIZE) as pilot:
        agents = table(app, "agents-table")
        keys = {a.key for a in started}
        await wait_for(pilot, lambda: set(agents.keys) == keys, message="rows")
        agents.focus()
        await pilot.press("down", "down")
        chosen = agents.cursor_key
        assert chosen is not None and agents.cursor_row == 2
        frames = app.frames
        await wait_for(pilot, lambda: app.frames >= frames + 3, message="three refreshes")
        assert agents.cursor_key == chosen and agents.cursor_row == 2
        # A row disappearing above the cursor moves the row, and the cursor follows it.
        victim = next(a for a in started if agents.keys.index(a.key) < 2)
        state_dir.agents.remove(victim)
        state_dir.write_state()
        await wait_for(pilot, lambda: victim.key not in agents.keys, message="row removed")
        assert agents.cursor_key == chosen and agents.cursor_row == 1


async def test_help_lists_every_binding_and_palette_has_every_action(
    state_dir: StateDir,
) -> None:
    app = console(state_dir.monitor())
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.frames >= 1, message="first frame")
        palette = {entry.action for entry in entries_for(app.dashboard)}
        bindings = [b for b in DashboardScreen.BINDINGS if isinstance(b, Binding)]
        assert len(bindings) == len(DashboardScreen.BINDINGS)
        for binding in bindings:
            if not binding.description:  # a greyed-out key's "why not" toast
                continue
            if binding.action in ("respawn", "stop", "log"):  # need a selected agent
                continue
            if binding.action == "clear_filter":  # only while a filter is set
                continue
            assert binding.action in palette
        await pilot.press("question_mark")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen))
        help_screen = app.screen
        assert isinstance(help_screen, HelpScreen)
        text = "\n".join(json.dumps(row) for _, rows in help_screen.sections for row in rows)
        for binding in bindings:
            if binding.description:
                assert json.dumps(binding.description) in text
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is app.dashboard)
        await pilot.press("q")
        await wait_for(pilot, lambda: not app.is_running, message="quit")


async def test_a_given_up_task_is_a_row_after_its_entries_left_the_state_file(
    tmp_path: Path,
) -> None:
    """The header's "1 given up" has its row in the agents table, in a fresh console."""
    from tests.functional.test_scenarios import base_config, give_up_on_spec20

    give_up_on_spec20(tmp_path)
    monitor = OrchestratorHealthMonitor(base_config(tmp_path))
    app = console(monitor)
    try:
        async with app.run_test(size=SIZE) as pilot:
            agents = table(app, "agents-table")

            def given_up_rows() -> list[str]:
                return [k for k in agents.keys if "given up" in agents.cell_text(k, "status")]

            await wait_for(pilot, lambda: len(given_up_rows()) == 1, message="given-up row")
            assert "1 given up" in header_text(app)
            (key,) = given_up_rows()
            assert agents.cell_text(key, "task") == "spec-20"
    finally:
        monitor.close()
