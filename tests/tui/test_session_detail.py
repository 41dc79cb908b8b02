"""A session (era 3) in the console at 80x24: shown as a session, never as a
process, and its log pane tells only its own failures, though Python hands its
thread id to the next thread at once."""

from __future__ import annotations

from textual.pilot import Pilot
from textual.widgets import Log, Static, TextArea

from ohm_tui.demo.lifecycle_db import InvocationsDB, LifecycleDB, local_now
from ohm_tui.engine.model import AgentView
from ohm_tui.tui.screens.agent_detail import AgentDetailScreen
from ohm_tui.tui.screens.bug_form import BugFormScreen
from tests.tui.conftest import StateDir, wait_for
from tests.tui.test_console import console, crash_rows, table

SMALL = (80, 24)
CMD = "claude --agent {} (session)"


async def _session_log(pilot: Pilot[None], log: Log) -> str:
    """The pane once the history read wrote it (whole, at once)."""
    await wait_for(pilot, lambda: "no log file" in "\n".join(log.lines), message="session log")
    return "\n".join(log.lines)


async def test_a_session_log_pane_shows_only_its_own_failures(state_dir: StateDir) -> None:
    db = LifecycleDB(state_dir.data)
    db.heartbeat()
    calls = InvocationsDB(state_dir.data)
    tid, at = 2**40 + 21, local_now()
    # One recycled thread: architect spec-22 runs on it after code_developer impl-064.
    db.register(tid, "code_developer", "impl-064", CMD.format("code_developer"), spawned_at=at)
    db.register(tid, "architect", "spec-22", CMD.format("architect"), spawned_at=at)
    call = calls.start("code_developer", "implement", session_id=f"impl-064-{tid}")
    calls.finish(call, "error", error="ClaudeError: tool use failed")
    monitor = state_dir.monitor()
    monitor.check()
    assert [c.task_id for c in monitor.crashes()] == ["impl-064"]
    agents: dict[str | None, AgentView] = {a.task_id: a for a in monitor.snapshot().agents}
    app = console(monitor)
    async with app.run_test(size=SMALL) as pilot:
        for task, own in (("impl-064", True), ("spec-22", False)):
            app.push_screen(AgentDetailScreen(monitor, agents[task], log_only=True))
            await pilot.pause()
            lines = await _session_log(pilot, app.screen.query_one("#agent-log", Log))
            assert ("ClaudeError" in lines) is own, (task, lines)
            assert ("impl-064" in lines) is own, (task, lines)
            app.pop_screen()
            await pilot.pause()


async def test_a_session_is_shown_as_a_session_never_as_a_process(state_dir: StateDir) -> None:
    """No PID (its thread id names none), no respawn count or history (it is never
    respawned), in the detail screen, the agents table and a bug filed by hand."""
    db = LifecycleDB(state_dir.data)
    db.heartbeat()
    tid = 2**40 + 22
    db.register(tid, "architect", "spec-22", CMD.format("architect"), spawned_at=local_now())
    calls = InvocationsDB(state_dir.data)
    call = calls.start("architect", "write the spec", session_id=f"spec-22-{tid}")
    calls.finish(call, "error", error="ClaudeError: overloaded")
    monitor = state_dir.monitor()
    app = console(monitor)
    async with app.run_test(size=SMALL) as pilot:
        agents = table(app, "agents-table")
        await wait_for(pilot, lambda: len(agents.keys) == 1, message="the session row")
        (key,) = agents.keys
        assert agents.cell_text(key, "respawns") == "-"
        await wait_for(pilot, lambda: crash_rows(app), message="its failed call, a crash")

        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, AgentDetailScreen))
        screen = app.screen
        head = screen.query_one("#agent-head")
        assert str(head.border_title) == "Session architect"
        info = str(screen.query_one("#agent-info", Static).render())
        assert str(tid) not in info and "PID" not in info and "respawns" not in info, info
        assert info.startswith("session · architect · task spec-22")
        assert not screen.query_one("#agent-history").display
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, AgentDetailScreen))

        for keys, said in (("b", "is"), (("2", "b"), "crashed")):
            await pilot.press(*keys)
            await wait_for(pilot, lambda: isinstance(app.screen, BugFormScreen), message="form")
            text = app.screen.query_one("#bug-description", TextArea).text
            assert text.startswith(f"Session architect on task spec-22 {said}"), text
            assert str(tid) not in text and "PID" not in text and "Respawns" not in text, text
            await pilot.press("escape")
            await wait_for(pilot, lambda: not isinstance(app.screen, BugFormScreen))
