"""What a new operator reads in the console at 80x24: where the state is, keys that
go where they say, text cut with an ellipsis, and no action offered that cannot run."""

from __future__ import annotations

import json

from textual.widgets import Log, Static
from textual.widgets.data_table import ColumnKey

from ohm_tui.demo.session import DemoSession
from ohm_tui.tui.agents_model import COLUMNS
from ohm_tui.tui.agents_table import AgentsTable
from ohm_tui.tui.dashboard import SESSION_REFUSAL
from ohm_tui.tui.header import HeaderStrip
from ohm_tui.tui.keyed_table import KeyedTable
from ohm_tui.tui.screens.agent_detail import AgentDetailScreen
from ohm_tui.tui.screens.confirm import ConfirmScreen
from ohm_tui.tui.screens.help import HelpScreen
from ohm_tui.tui.screens.issues import IssuesScreen
from ohm_tui.tui.timeline_panel import CrashTable
from tests.tui.conftest import StateDir, wait_for
from tests.tui.test_console import console, rendered

SMALL = (80, 24)


async def test_help_says_where_the_state_is_and_lists_each_key_once(state_dir: StateDir) -> None:
    monitor = state_dir.monitor()
    demo = DemoSession(state_dir.data)  # not started: only its paths are read
    app = console(monitor, demo=demo)
    async with app.run_test(size=SMALL) as pilot:
        await wait_for(pilot, lambda: app.frames >= 1, message="first frame")
        await pilot.press("question_mark")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen))
        help_screen = app.screen
        assert isinstance(help_screen, HelpScreen)
        sections = dict(help_screen.sections)
        where = {key: what for key, what, _ in sections["Watching"]}
        assert where["state dir"] == str(state_dir.data)
        assert str(state_dir.root) in where["demo"]
        overview_keys = [key for key, _, _ in sections["Overview"]]
        assert overview_keys.count("?") == 1, json.dumps(overview_keys)
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is app.dashboard)
        # Where the width allows, the header says it too (whole, never cut).
        header = app.dashboard.query_one(HeaderStrip)
        assert f"state {state_dir.data}" not in str(header.content)  # 80 columns: no room
        await pilot.resize_terminal(200, 30)
        await wait_for(
            pilot, lambda: f"state {state_dir.data}" in str(header.content), message="dir shown"
        )


async def test_home_and_end_move_the_cursor_to_the_first_and_last_row(
    state_dir: StateDir,
) -> None:
    agents = [state_dir.start_agent("architect", f"spec-{i}") for i in range(4)]
    monitor = state_dir.monitor()
    for i in range(3):
        monitor.file_bug(f"bug {i}", "Low", "filed by hand")
    app = console(monitor)
    async with app.run_test(size=SMALL) as pilot:
        table = app.dashboard.query_one("#agents-table", AgentsTable)
        await wait_for(pilot, lambda: table.row_count == len(agents), message="agent rows")
        for first, last in (("home", "end"), ("g", "G")):
            await pilot.press(last)
            assert table.cursor_row == table.row_count - 1
            assert table.scroll_x == 0  # never sideways
            assert app.dashboard.selected_agent is not None
            assert app.dashboard.selected_agent.key == table.keys[-1]
            await pilot.press(first)
            assert table.cursor_row == 0 and table.scroll_x == 0
        bugs = app.dashboard.query_one("#bugs-table", KeyedTable)
        await wait_for(pilot, lambda: bugs.row_count == 3, message="bug rows")
        await pilot.press("3")
        for first, last in (("home", "end"), ("g", "G")):
            await pilot.press(last)
            assert bugs.cursor_row == 2
            await pilot.press(first)
            assert bugs.cursor_row == 0
        # The crash timeline: end / G is still "newest, following"; home is the oldest.
        for agent in agents[:3]:
            agent.crash()
        crashes = app.dashboard.query_one("#crashes-table", CrashTable)
        await wait_for(pilot, lambda: crashes.row_count >= 3, message="crash rows")
        await pilot.press("2")
        await pilot.press("home")
        assert crashes.cursor_row == 0 and not crashes.following
        await pilot.press("end")
        assert crashes.cursor_row == crashes.row_count - 1 and crashes.following


async def test_session_rows_grey_out_respawn_and_stop_and_explain_the_empty_log(
    state_dir: StateDir,
) -> None:
    from ohm_tui.demo.lifecycle_db import LifecycleDB

    db = LifecycleDB(state_dir.data)
    db.register(2**40 + 3, "architect", "spec-5", "claude --agent architect (session)")
    monitor = state_dir.monitor()
    app = console(monitor)
    async with app.run_test(size=SMALL) as pilot:
        table = app.dashboard.query_one("#agents-table", AgentsTable)
        await wait_for(pilot, lambda: table.row_count == 1, message="the session row")
        agent = app.dashboard.selected_agent
        assert agent is not None and agent.source == "session"
        # Its "PID" is a 15-digit thread id that names no process: the column says so.
        assert table.cell_text(agent.key, "pid") == "session"
        for key, action in (("r", "respawn"), ("k", "stop")):
            assert app.dashboard.check_action(action, ()) is None  # greyed out
            await pilot.press(key)
            await wait_for(
                pilot,
                lambda: any(SESSION_REFUSAL in n.message for n in app._notifications),
                message=f"{key}: the reason in a toast",
            )
            assert not isinstance(app.screen, ConfirmScreen)  # never a dialog first
            app.clear_notifications()
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, AgentDetailScreen))
        log = app.screen.query_one("#agent-log", Log)
        await wait_for(pilot, lambda: "no log file" in "\n".join(log.lines), message="log line")
        assert "claude_invocations.db" in "\n".join(log.lines)
        history = app.screen.query_one("#agent-history", Static)
        assert "never respawned" in str(history.render())


def _fits(table: KeyedTable) -> bool:
    """No column runs past the table's edge (where it would be cut with no ``…``)."""
    total = sum(c.get_render_width(table) for c in table.columns.values())
    return 0 < total <= table.scrollable_content_region.width


def _agents_fit(table: AgentsTable) -> bool:
    """Every drawn line of the agents table ends inside it (its text, not cut by the edge)."""
    width = table.scrollable_content_region.width
    lines = rendered(table).splitlines()
    return bool(table.shown_columns) and all(len(line.rstrip()) <= width for line in lines)


async def test_text_cut_to_a_column_ends_with_an_ellipsis_and_numbers_stay_whole(
    state_dir: StateDir,
) -> None:
    long_line = "API Error: 529 " + json.dumps({"type": "error", "message": "x" * 80})
    busy = state_dir.start_agent("code_developer", "impl-7-with-a-long-task-name", line=long_line)
    doomed = state_dir.start_agent("architect", "spec-20")
    monitor = state_dir.monitor()
    app = console(monitor)
    async with app.run_test(size=SMALL) as pilot:
        agents = app.dashboard.query_one("#agents-table", AgentsTable)
        await wait_for(pilot, lambda: agents.row_count == 2, message="agent rows")
        doomed.crash()
        crashes = app.dashboard.query_one("#crashes-table", KeyedTable)
        await wait_for(pilot, lambda: crashes.row_count == 1, message="crash row")
        await wait_for(
            pilot, lambda: agents.cell_text(busy.key, "mem") != "-", message="memory sampled"
        )
        await wait_for(pilot, lambda: _agents_fit(agents) and _fits(crashes), message="tables fit")
        await pilot.pause()
        shown = rendered(agents)
        header, *rows = shown.splitlines()
        # At 80 columns the least important columns are left out whole (as `ohm agents`
        # does): a header word is never cut, and a number and its unit never are.
        columns = dict(COLUMNS)
        labels = {key: label for label, key in COLUMNS}
        assert columns and "mem" not in agents.shown_columns  # Memory goes first
        for key in agents.shown_columns:
            assert labels[key] in header, (labels[key], header)
        assert "Memory" not in header and "Mem" not in header
        for key in ("pid", "type", "status", "last"):
            assert key in agents.shown_columns, agents.shown_columns
        assert agents.cell_text(busy.key, "type") in shown  # "code_developer", whole
        assert any(line.rstrip().endswith("…") for line in rows)  # the long log line
        await pilot.resize_terminal(160, 30)  # room for every column: memory whole
        await wait_for(pilot, lambda: "mem" in agents.shown_columns, message="memory shown")
        await pilot.pause()
        assert agents.cell_text(busy.key, "mem") in rendered(agents)
        await pilot.resize_terminal(*SMALL)
        await pilot.pause()
        crash_lines = rendered(crashes).splitlines()
        assert crash_lines[1].rstrip().endswith("…")  # the long ImportError message
        await wait_for(
            pilot, lambda: app.snapshot is not None and app.snapshot.report.issues, message="issue"
        )
        await pilot.press("i")
        await wait_for(pilot, lambda: isinstance(app.screen, IssuesScreen))
        issues = app.screen.query_one("#issues-table", KeyedTable)
        await wait_for(pilot, lambda: issues.row_count >= 1, message="issue rows")
        await pilot.press("a")  # "acked by <who> until it changes": long, cut to fit
        key = issues.keys[0]
        await wait_for(pilot, lambda: issues.cell_text(key, "ack") != "-", message="acked")
        await wait_for(pilot, lambda: _fits(issues), message="issues fit the dialog")
        await pilot.pause()
        ack_column = issues.columns[ColumnKey("ack")]
        if not ack_column.auto_width:  # narrowed: its text ends with "…", never mid-word bare
            assert "…" in rendered(issues).splitlines()[1]
