"""The operator's first hour (issue 9): the timeline follows new crashes, the filter
shows what is typed, r/k act on the focused panel's agent, read-only says why, and
the panels share the screen by content. Real agents, real crashes, the real console."""

from __future__ import annotations

import io

import pytest
from rich.console import Console
from textual.notifications import Notify
from textual.widgets import Input, Static

from ohm_tui.engine.monitor import OrchestratorHealthMonitor
from ohm_tui.tui.app import OhmApp
from ohm_tui.tui.messages import ActionDone
from ohm_tui.tui.screens.confirm import ConfirmScreen
from ohm_tui.tui.timeline_panel import CrashTable, TimelinePanel
from tests.tui.conftest import StateDir, wait_for
from tests.tui.test_console import (
    Recorder,
    agent_pids,
    console,
    crash_rows,
    table,
    watched,
)

SIZE = (120, 40)


def screen_text(app: OhmApp) -> str:
    """The whole screen as plain text, as the terminal shows it."""
    width, height = app.size
    out = Console(width=width, height=height, file=io.StringIO(), record=True, color_system=None)
    update = app.screen._compositor.render_update(full=True, screen_stack=app._background_screens)
    out.print(update)
    return out.export_text()


def timeline_title(app: OhmApp) -> str:
    return str(app.dashboard.query_one(TimelinePanel).border_title)


async def test_timeline_follows_new_crashes_until_the_cursor_moves(state_dir: StateDir) -> None:
    agents = [state_dir.start_agent("architect", f"spec-{n}") for n in range(5)]
    monitor = state_dir.monitor(health_check_interval=30.0)
    app = console(monitor)
    async with app.run_test(size=SIZE) as pilot:
        crashes = app.dashboard.query_one("#crashes-table", CrashTable)
        panel = app.dashboard.query_one(TimelinePanel)
        pids = {a.pid for a in agents}
        await wait_for(pilot, lambda: pids <= agent_pids(app), message="agent rows")
        await wait_for(pilot, lambda: all(watched(monitor, p) for p in pids), message="watched")

        def newest() -> str | None:
            rows = crash_rows(app)
            return rows[-1] if rows else None

        # Left alone, the cursor is on the newest crash after every new one.
        for n, agent in enumerate(agents[:3], 1):
            agent.crash()
            await wait_for(pilot, lambda n=n: len(crash_rows(app)) == n, message=f"crash {n}")
            assert panel.crashes[newest() or ""].agent_pid == agent.pid  # newest at the bottom
            assert crashes.cursor_key == newest()
            assert crashes.following and "following" in timeline_title(app)
        # The operator moves up: the cursor stays on that crash as new ones arrive.
        await pilot.press("2", "up")
        chosen = crashes.cursor_key
        assert chosen is not None and chosen != newest()
        assert not crashes.following and "G: follow newest" in timeline_title(app)
        agents[3].crash()
        await wait_for(pilot, lambda: len(crash_rows(app)) == 4, message="crash 4")
        frames = app.frames
        await wait_for(pilot, lambda: app.frames >= frames + 2, message="two more frames")
        assert crashes.cursor_key == chosen and not crashes.following
        # G jumps back to the newest and follows again.
        await pilot.press("G")
        assert crashes.cursor_key == newest() and crashes.following
        assert "following" in timeline_title(app) and "G:" not in timeline_title(app)
        agents[4].crash()
        await wait_for(pilot, lambda: len(crash_rows(app)) == 5, message="crash 5")
        assert crashes.cursor_key == newest()
        assert panel.crashes[newest() or ""].agent_pid == agents[4].pid
        # End does the same as G.
        await pilot.press("up", "up")
        assert not crashes.following
        await pilot.press("end")
        assert crashes.following and crashes.cursor_key == newest()
        # The newest row is on screen, not scrolled away.
        region = crashes.scrollable_content_region
        assert crashes.cursor_row - crashes.scroll_offset.y + 1 <= region.height


def toasts(recorder: Recorder) -> list[str]:
    return [str(m.notification.message) for m in recorder.of(Notify)]


async def test_r_and_k_act_on_the_focused_panels_agent(state_dir: StateDir) -> None:
    crashed = state_dir.start_agent("architect", "spec-20")
    other = state_dir.start_agent("code_developer", "impl-7")
    monitor = state_dir.monitor()
    recorder = Recorder()
    app = console(monitor)
    async with app.run_test(size=SIZE, message_hook=recorder) as pilot:
        agents = table(app, "agents-table")
        await wait_for(pilot, lambda: {crashed.key, other.key} <= set(agents.keys), message="rows")
        await wait_for(pilot, lambda: watched(monitor, crashed.pid), message="death watch")
        crashed.crash()
        await wait_for(pilot, lambda: crash_rows(app), message="crash row")
        await wait_for(
            pilot,
            lambda: agents.cell_text(crashed.key, "status") == "crashed",
            message="crashed row",
        )
        assert agents.move_to_key(other.key)  # the agents table points at the other agent
        # From the timeline, k and r name the crash's agent, not the agents table's.
        await pilot.press("2", "k")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), message="confirm")
        body = str(app.screen.query_one("#confirm-body", Static).content)
        assert f"PID {crashed.pid}" in body and f"PID {other.pid}" not in body
        await pilot.press("n")
        await wait_for(pilot, lambda: app.screen is app.dashboard)
        assert app.focused is not None and app.focused.id == "crashes-table"
        await pilot.press("r")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), message="confirm")
        body = str(app.screen.query_one("#confirm-body", Static).content)
        assert f"PID {crashed.pid}" in body and "spec-20" in body
        await pilot.press("y")
        await wait_for(pilot, lambda: recorder.of(ActionDone), message="respawn finished")
        (done,) = recorder.of(ActionDone)
        assert done.result.ok, done.result.message
        new_pid = done.result.new_pid
        assert new_pid is not None and new_pid not in (crashed.pid, other.pid)
        await wait_for(pilot, lambda: new_pid in agent_pids(app), message="respawned row")
        entry = state_dir.read_state()["active_agents"][str(new_pid)]
        assert entry["task_id"] == "spec-20"  # the crash's task, not impl-7
        assert other.popen.poll() is None  # the agents table's selection was never touched
        # From the bug list there is no agent: r and k are greyed out and say why.
        monitor.file_bug("Filed by hand", "Low", "a bug is not an agent run")
        bugs = table(app, "bugs-table")
        await wait_for(pilot, lambda: bugs.keys, message="bug row")
        await pilot.press("3")
        dashboard = app.dashboard
        assert dashboard.check_action("respawn", ()) is None
        assert dashboard.check_action("stop", ()) is None
        footer = {b.binding.action: b.enabled for b in dashboard.active_bindings.values()}
        assert footer["respawn"] is False and footer["stop"] is False  # drawn greyed out
        await pilot.press("r", "k")
        await pilot.pause()
        assert app.screen is dashboard and len(recorder.of(ActionDone)) == 1
        said = toasts(recorder)
        assert any("No agent for respawn: a bug is not an agent run" in t for t in said), said
        assert any("No agent for stop" in t for t in said), said
        # Back on the agents table they act on its selection again.
        await pilot.press("1")
        assert agents.move_to_key(other.key)
        assert dashboard.target_agent is not None and dashboard.target_agent.pid == other.pid
        assert dashboard.check_action("stop", ()) is True


async def test_read_only_says_why_for_every_mutating_key(state_dir: StateDir) -> None:
    agent = state_dir.start_agent("architect", "spec-20")
    before = state_dir.state_path.read_bytes()
    monitor = OrchestratorHealthMonitor(state_dir.config(), read_only=True)
    state_dir.monitors.append(monitor)
    recorder = Recorder()
    app = console(monitor, read_only=True)
    async with app.run_test(size=SIZE, message_hook=recorder) as pilot:
        await wait_for(pilot, lambda: agent.pid in agent_pids(app), message="agent row")
        expected = {
            "r": "read-only: respawn is disabled",
            "k": "read-only: stop is disabled",
            "z": "read-only: zombie cleanup is disabled",
            "b": "read-only: filing bugs is disabled",
            "f": "read-only: auto-fix is disabled",
        }
        for key, message in expected.items():
            seen = len(recorder.of(Notify))
            await pilot.press(key)
            await wait_for(pilot, lambda seen=seen: len(recorder.of(Notify)) > seen, message=key)
            assert toasts(recorder)[-1] == message
            assert app.screen is app.dashboard, key
        assert not monitor.auto_fix
        assert state_dir.state_path.read_bytes() == before
        assert agent.popen.poll() is None


def filter_line(app: OhmApp) -> str:
    """The screen text where the filter input is drawn."""
    region = app.dashboard.query_one("#agents-filter", Input).region
    assert region.height >= 1, region
    return screen_text(app).splitlines()[region.y][region.x : region.right]


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
async def test_filter_shows_its_placeholder_and_what_is_typed(
    state_dir: StateDir, size: tuple[int, int]
) -> None:
    developer = state_dir.start_agent("code_developer", "impl-7")
    state_dir.start_agent("architect", "spec-20")
    app = console(state_dir.monitor())
    async with app.run_test(size=size) as pilot:
        agents = table(app, "agents-table")
        await wait_for(pilot, lambda: developer.key in agents.keys, message="rows")
        await pilot.press("slash")
        assert app.focused is app.dashboard.query_one("#agents-filter", Input)
        await pilot.pause()
        assert "filter by type, task or status" in filter_line(app), filter_line(app)
        await pilot.press(*"code_dev")
        await wait_for(pilot, lambda: set(agents.keys) == {developer.key}, message="filtered")
        await pilot.pause()
        assert "code_dev" in filter_line(app), filter_line(app)
        await pilot.press("enter")  # kept: still shown under the table, unfocused
        await pilot.pause()
        assert "code_dev" in filter_line(app), filter_line(app)
