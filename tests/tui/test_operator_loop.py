"""The operator's first hour (issue 9): the timeline follows new crashes, the filter
shows what is typed, r/k act on the focused panel's agent, read-only says why, and
the panels share the screen by content. Real agents, real crashes, the real console."""

from __future__ import annotations

import io
import time

import pytest
from rich.console import Console
from textual.notifications import Notify
from textual.widgets import Input, Sparkline, Static

from ohm_tui.engine.model import CrashInfo
from ohm_tui.engine.monitor import OrchestratorHealthMonitor
from ohm_tui.tui.app import OhmApp
from ohm_tui.tui.layout import wanted_height
from ohm_tui.tui.messages import ActionDone
from ohm_tui.tui.screens.confirm import ConfirmScreen
from ohm_tui.tui.timeline_panel import CrashTable, TimelinePanel
from tests.tui.conftest import StateDir, wait_for
from tests.tui.test_console import (
    Recorder,
    agent_pids,
    console,
    crash_rows,
    rendered,
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
            # "crashed (exit 1)" when a check read the exit status of the zombie
            lambda: agents.cell_text(crashed.key, "status").startswith("crashed"),
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


def record_past_crashes(monitor: OrchestratorHealthMonitor, count: int, over: float) -> None:
    """Crash rows from a run before this one, spread over the last ``over`` seconds,
    written to the real ``agent_crashes`` table as the engine writes them."""
    now = time.time()
    for n in range(count):
        monitor.store.record_crash(
            agent_key=f"{4000 + n}@{int(now - over)}",
            agent_pid=4000 + n,
            agent_type="code_developer",
            task_id=f"impl-{n}",
            crashed_at=now - over + n * over / count,
            exit_code=1,
            info=CrashInfo(error_type="RuntimeError", error_message=f"boom {n}"),
            log_file=None,
            command_text="poetry run code-developer",
            cwd=str(monitor.config.data_dir),
            source="real",
        )


async def test_panels_share_the_height_by_content_and_the_sparkline_fits(
    state_dir: StateDir,
) -> None:
    agent = state_dir.start_agent("architect", "spec-20")
    state_dir.start_agent("code_developer", "impl-7")
    monitor = state_dir.monitor(health_check_interval=30.0)
    record_past_crashes(monitor, 40, over=120.0)  # two minutes of history, not six hours
    monitor.file_bug("One bug", "Low", "the bug list holds one row")
    app = console(monitor)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: agent.pid in agent_pids(app), message="agent rows")
        await wait_for(pilot, lambda: watched(monitor, agent.pid), message="death watch")
        agent.crash()  # and one real crash now
        await wait_for(pilot, lambda: len(crash_rows(app)) == 41, message="41 crash rows")
        frames = app.frames
        await wait_for(pilot, lambda: app.frames >= frames + 2, message="laid out")
        dashboard = app.dashboard
        agents_panel = dashboard.query_one("#agents")
        timeline = dashboard.query_one("#timeline")
        bugs = dashboard.query_one("#bugs")
        crashes = dashboard.query_one("#crashes-table", CrashTable)
        # Small panels get what their rows need, no empty rows; the timeline the rest
        # (with a fixed split it showed six crashes under a half-empty bug list).
        assert bugs.outer_size.height == wanted_height(bugs) == 4
        assert agents_panel.outer_size.height == wanted_height(agents_panel) == 5
        available = dashboard.query_one("#panes").size.height
        assert timeline.outer_size.height == available - 4 - 5
        assert crashes.size.height - 1 >= 20, crashes.size  # crash rows below its header
        assert "ImportError" in rendered(crashes)  # following: the newest is on screen
        # The sparkline's window fits the two minutes there are: crashes spread out.
        assert app.snapshot is not None and app.snapshot.histogram_bucket_seconds == 5
        spark = dashboard.query_one("#crash-spark", Sparkline)
        filled = [n for n in (spark.data or []) if n]
        assert len(filled) >= 10, spark.data
        assert "in 3 minutes" in str(timeline.border_title)
        caption = str(dashboard.query_one("#crash-spark-label", Static).content)
        assert caption.startswith("crashes per 5 seconds")


async def test_small_footer_keeps_enter_and_s_and_s_shows_its_direction(
    state_dir: StateDir,
) -> None:
    started = [state_dir.start_agent("architect", f"spec-{n}") for n in range(3)]
    app = console(state_dir.monitor())
    async with app.run_test(size=(80, 24)) as pilot:
        agents = table(app, "agents-table")
        await wait_for(pilot, lambda: {a.key for a in started} <= set(agents.keys))

        def footer() -> str:
            return screen_text(app).splitlines()[-1]

        await wait_for(pilot, lambda: "Help" in footer(), message="footer drawn")
        for item in ("⏎ Details", "? Help", "r Respawn", "s Sort", "q Quit"):
            assert item in footer(), footer()
        title = app.dashboard.query_one("#agents")
        for _ in range(20):  # problems first, CPU, ..., PID
            if "sort: PID" in str(title.border_title):
                break
            await pilot.press("s")
        assert "sort: PID ▲" in str(title.border_title)
        await wait_for(pilot, lambda: "PID ▲" in rendered(agents).splitlines()[0])
        pids = [int(agents.cell_text(key, "pid")) for key in agents.keys]
        assert pids == sorted(pids)
        await pilot.press("S")  # the same column, the other way round
        assert "sort: PID ▼" in str(title.border_title)
        await wait_for(pilot, lambda: "PID ▼" in rendered(agents).splitlines()[0])
        pids = [int(agents.cell_text(key, "pid")) for key in agents.keys]
        assert pids == sorted(pids, reverse=True)
        frames = app.frames
        await wait_for(pilot, lambda: app.frames >= frames + 2, message="refreshes")
        assert [int(agents.cell_text(key, "pid")) for key in agents.keys] == pids
        await pilot.press("s")  # the next column starts in its own direction
        assert "sort: problems first ▲" in str(title.border_title)
        assert "PID ▼" not in rendered(agents).splitlines()[0]
