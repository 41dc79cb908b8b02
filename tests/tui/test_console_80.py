"""The console at 80x24, as a new operator first sees it (``ohm demo``): crashes are
never hidden, the narrow panels stay readable, and every key answers."""

from __future__ import annotations

import re
from typing import Any

from rich.text import Text
from textual.widgets import Static

from ohm_tui.engine import fmt
from ohm_tui.engine.monitor import OrchestratorHealthMonitor
from ohm_tui.tui.agents_panel import AgentsPanel
from ohm_tui.tui.agents_table import AgentsTable
from ohm_tui.tui.app import OhmApp, make_app
from ohm_tui.tui.header import HeaderStrip
from ohm_tui.tui.keyed_table import KeyedTable
from ohm_tui.tui.messages import ActionDone
from ohm_tui.tui.screens.bug_detail import BugDetailScreen
from ohm_tui.tui.screens.confirm import ConfirmScreen
from ohm_tui.tui.screens.issues import IssueDetailScreen, IssuesScreen
from ohm_tui.tui.timeline_panel import TimelinePanel
from tests.tui.conftest import StateDir, wait_for
from tests.tui.test_console import Recorder, rendered

SIZE = (80, 24)


def console(monitor: OrchestratorHealthMonitor, **kw: Any) -> OhmApp:
    app = make_app(monitor, **kw)
    app.refresh_interval = 0.2
    return app


def agents_table(app: OhmApp) -> AgentsTable:
    return app.dashboard.query_one("#agents-table", AgentsTable)


def visible_keys(table: AgentsTable) -> list[str]:
    """Keys of the rows drawn on screen now."""
    top = table.scroll_offset.y
    view = table.size.height - table.header_height
    return table.keys[top : top + view]


def agents_title(app: OhmApp) -> str:
    return str(app.dashboard.query_one(AgentsPanel).border_title)


async def test_a_new_crash_is_in_view_when_the_table_was_at_the_top(
    state_dir: StateDir,
) -> None:
    started = [state_dir.start_agent("architect", f"spec-{n}") for n in range(26)]
    app = console(state_dir.monitor(max_respawn_attempts=0))
    async with app.run_test(size=SIZE) as pilot:
        table = agents_table(app)
        keys = {a.key for a in started}
        await wait_for(pilot, lambda: set(table.keys) == keys, message="rows")
        view = table.size.height - table.header_height
        assert len(keys) > view + 2, f"the table must scroll ({view} rows in view)"
        table.focus()
        await pilot.press("down")  # a running agent near the top
        chosen = table.cursor_key
        assert table.scroll_offset.y == 0 and table.cursor_row == 1
        victim = next(a for a in started if table.keys.index(a.key) > view)
        victim.crash()

        def crashed() -> bool:
            return victim.key in table.keys and table.cell_text(victim.key, "status") != "running"

        await wait_for(pilot, crashed, message="the victim's row shows its crash")
        await pilot.pause()
        assert victim.key in visible_keys(table), "the crash is hidden above the view"
        assert table.keys.index(victim.key) == 0
        assert table.cursor_key == chosen  # the cursor stays on its agent, moved down
        assert "above" not in agents_title(app)

        # Scrolled down: the cursor keeps its line, and the title says what is above.
        await pilot.press("pagedown", "pagedown")
        assert table.scroll_offset.y > 0
        await wait_for(pilot, lambda: "▲ 1 problem above" in agents_title(app), message="title")
        line = table.cursor_row - table.scroll_offset.y
        second = next(
            a
            for a in started
            if a.key in visible_keys(table)[1:] and a.key not in (victim.key, table.cursor_key)
        )
        second.crash()

        def second_crashed() -> bool:
            return table.cell_text(second.key, "status") != "running"

        await wait_for(pilot, second_crashed, message="second crash")
        await wait_for(
            pilot,
            lambda: "▲ 2 problems above" in agents_title(app),
            message="the title counts both crashes above the view",
        )
        assert table.cursor_row - table.scroll_offset.y == line
        await pilot.press("home")
        await wait_for(pilot, lambda: "above" not in agents_title(app), message="title clears")


async def test_after_a_manual_respawn_the_cursor_is_on_the_new_run(state_dir: StateDir) -> None:
    started = [state_dir.start_agent("architect", f"spec-{n}") for n in range(6)]
    recorder = Recorder()
    app = console(state_dir.monitor(max_respawn_attempts=0))
    async with app.run_test(size=SIZE, message_hook=recorder) as pilot:
        table = agents_table(app)
        await wait_for(pilot, lambda: {a.key for a in started} <= set(table.keys), message="rows")
        agent = started[3]
        agent.crash()
        await wait_for(
            pilot, lambda: table.cell_text(agent.key, "status") != "running", message="crashed"
        )
        table.focus()
        assert table.move_to_key(agent.key)
        await pilot.press("r")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), message="confirm")
        await pilot.press("y")
        await wait_for(pilot, lambda: recorder.of(ActionDone), message="respawn finished")
        (done,) = recorder.of(ActionDone)
        result = done.result
        assert result.ok and result.agent_key is not None, result.message
        await wait_for(pilot, lambda: result.agent_key in table.keys, message="new run's row")
        frames = app.frames
        await wait_for(pilot, lambda: app.frames >= frames + 2, message="two refreshes")
        assert table.cursor_key == result.agent_key
        assert table.cell_text(result.agent_key, "pid") == str(result.new_pid)


async def test_crash_timeline_at_80_columns_keeps_the_message_and_shows_clock_times(
    state_dir: StateDir,
) -> None:
    agents = [state_dir.start_agent("code_developer", f"impl-06{n}") for n in range(2)]
    app = console(state_dir.monitor(max_respawn_attempts=0))
    async with app.run_test(size=SIZE) as pilot:
        table = agents_table(app)
        await wait_for(pilot, lambda: {a.key for a in agents} <= set(table.keys), message="rows")
        for agent in agents:
            agent.crash()
        crashes = app.dashboard.query_one("#crashes-table", KeyedTable)
        await wait_for(pilot, lambda: len(crashes.keys) == 2, message="two crash rows")
        await pilot.pause()
        panel = app.dashboard.query_one(TimelinePanel)
        for key in crashes.keys:
            crash = panel.crashes[key]
            when = crashes.cell_text(key, "when")
            # A clock time, not "just now": two crashes a moment apart can be told apart.
            assert when == fmt.clock(crash.crashed_at), when
            assert re.fullmatch(r"\d\d:\d\d:\d\d", when)
        lines = rendered(crashes).splitlines()
        assert "Message" in lines[0] and "Action" not in lines[0], "\n".join(lines)
        assert any("cannot import name 'Skill" in line for line in lines[1:]), lines
        assert all("code_devel" in line and "impl-06" in line for line in lines[1:3]), lines


async def test_issues_list_at_80_columns_reads_whole_and_enter_shows_the_full_issue(
    state_dir: StateDir,
) -> None:
    agent = state_dir.start_agent("code_developer", "spec-22")
    app = console(state_dir.monitor(max_respawn_attempts=0))
    async with app.run_test(size=SIZE) as pilot:
        table = agents_table(app)
        await wait_for(pilot, lambda: agent.key in table.keys, message="agent row")
        agent.crash()
        await wait_for(
            pilot,
            lambda: (
                any(i.task_id == "spec-22" for i in app.state.snapshot.report.issues)
                if app.state.snapshot is not None
                else False
            ),
            message="a crash issue",
        )
        await pilot.press("i")
        await wait_for(pilot, lambda: isinstance(app.screen, IssuesScreen), message="issues")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, IssuesScreen)
        issues = screen.query_one(KeyedTable)
        lines = rendered(issues).splitlines()
        assert "Id" not in lines[0].split(), lines[0]  # no column of ids for a person
        (row,) = [line for line in lines[1:] if "spec-22" in line]
        assert "spec-22 crashed: ImportError" in row and "…" not in row, row
        # The dialog fits its rows: no screenful of empty lines.
        dialog = screen.query_one("#issues-dialog")
        assert dialog.size.height <= issues.row_count + 14, dialog.size
        assert issues.size.height == issues.row_count + 1
        # The highlighted issue in full, under the table.
        issue = screen.selected
        assert issue is not None and issue.task_id == "spec-22"
        detail = str(screen.query_one("#issue-detail", Static).render())
        assert "SkillNames" in detail
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, IssueDetailScreen), message="detail")
        await pilot.pause()
        body = app.screen.query_one("#issue-detail-body", Static).content
        assert isinstance(body, Text)
        full = body.plain
        for part in (issue.error.strip(), str(issue.type), str(issue.severity), "spec-22"):
            assert part in full, (part, full)
        assert "not acknowledged" in full
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, IssuesScreen), message="back")


async def test_read_only_bug_detail_says_why_every_change_key_does_nothing(
    state_dir: StateDir,
) -> None:
    writer = state_dir.monitor()
    bug = writer.file_bug("spec-22 keeps crashing", "High", "seen in the demo")
    writer.close()
    state_dir.monitors.remove(writer)
    monitor = OrchestratorHealthMonitor(state_dir.config(), read_only=True)
    state_dir.monitors.append(monitor)
    app = console(monitor, read_only=True)
    async with app.run_test(size=SIZE) as pilot:
        bugs = app.dashboard.query_one("#bugs-table", KeyedTable)
        await wait_for(pilot, lambda: str(bug.bug_number) in bugs.keys, message="bug row")
        await pilot.press("3", "enter")
        await wait_for(pilot, lambda: isinstance(app.screen, BugDetailScreen), message="detail")
        await pilot.pause()
        for key in ("c", "plus", "o", "minus"):
            app.clear_notifications()
            await pilot.press(key)
            await wait_for(
                pilot,
                lambda: any("read-only" in n.message for n in app._notifications),
                message=f"a read-only toast for {key}",
            )
        assert monitor.bug(bug.bug_number).status == bug.status
        assert monitor.bug(bug.bug_number).priority == "High"


async def test_header_cuts_the_cause_at_a_word_boundary(state_dir: StateDir) -> None:
    agent = state_dir.start_agent("code_developer", "spec-1234")
    app = console(state_dir.monitor(max_respawn_attempts=0))
    async with app.run_test(size=SIZE) as pilot:
        table = agents_table(app)
        await wait_for(pilot, lambda: agent.key in table.keys, message="agent row")
        agent.crash()

        def line() -> str:
            return str(app.dashboard.query_one(HeaderStrip).content).splitlines()[0]

        await wait_for(pilot, lambda: "spec-1234" in line(), message="the header names it")
        cause = line().split(" · ")[1].strip()
        # "spec-1234 crashed: ImportError" is past the cause's room: whole words only.
        assert cause in ("spec-1234 crashed…", "spec-1234 crashed: ImportError"), cause
        assert len(line()) <= 80
