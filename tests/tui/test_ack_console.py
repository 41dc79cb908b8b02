"""Acknowledging from the console at 80x24: the header names the cause, ``a`` acks it.

Real agents of a real-format state directory really crash (see ``conftest.py``).
"""

from __future__ import annotations

from typing import Any

from ohm_tui.engine.model import IssueType
from ohm_tui.tui.agents_table import AgentsTable
from ohm_tui.tui.app import OhmApp, make_app
from ohm_tui.tui.header import HeaderStrip
from ohm_tui.tui.keyed_table import KeyedTable
from ohm_tui.tui.screens.issues import IssuesScreen
from tests.tui.conftest import StateDir, wait_for

SIZE = (80, 24)


def console(state_dir: StateDir, **extra: Any) -> OhmApp:
    app = make_app(state_dir.monitor(**extra))
    app.refresh_interval = 0.2
    return app


def header(app: OhmApp) -> list[str]:
    return str(app.dashboard.query_one(HeaderStrip).content).splitlines()


async def test_header_names_the_cause_and_a_acknowledges_the_selected_agents_issue(
    state_dir: StateDir,
) -> None:
    agent = state_dir.start_agent("architect", "spec-20")
    state_dir.start_agent("code_developer", "impl-7")
    app = console(state_dir)
    monitor = app.monitor
    async with app.run_test(size=SIZE) as pilot:
        agents = app.dashboard.query_one("#agents-table", AgentsTable)
        await wait_for(pilot, lambda: agent.key in agents.keys, message="agent row")
        agent.crash()
        await wait_for(
            pilot,
            lambda: header(app)[0].startswith(" DEGRADED  · spec-20 crashed: ImportError"),
            message="header names the crash",
        )
        assert len(header(app)) == 2 and all(len(line) <= 80 for line in header(app))
        assert agents.move_to_key(agent.key)
        await pilot.press("a")
        await wait_for(pilot, lambda: header(app)[0].startswith(" HEALTHY "), message="acked")
        assert "1 acked" in header(app)[0]
        (ack,) = monitor.list_acks()
        assert ack.issue_id == "agent_crash:task:spec-20"
        # Still shown, marked: the issues list has it, dimmed, with who acknowledged it.
        await pilot.press("i")
        await wait_for(pilot, lambda: isinstance(app.screen, IssuesScreen), message="issues")
        screen = app.screen
        assert isinstance(screen, IssuesScreen)
        table = screen.query_one(KeyedTable)
        assert table.cell_text(ack.issue_id, "ack").startswith("acked by ")
        assert table.move_to_key(ack.issue_id)
        await pilot.press("u")  # take it back: the status is the crash's again
        await wait_for(pilot, lambda: not monitor.list_acks(), message="ack taken back")
        await wait_for(pilot, lambda: table.cell_text(ack.issue_id, "ack") == "-", message="row")
        await pilot.press("escape")
        await wait_for(
            pilot, lambda: header(app)[0].startswith(" DEGRADED "), message="degraded again"
        )


async def test_a_with_nothing_selected_opens_the_issues_list_and_acks_a_crash_storm(
    state_dir: StateDir,
) -> None:
    first = state_dir.start_agent("architect", "spec-20")
    second = state_dir.start_agent("code_developer", "impl-7")
    app = console(state_dir, crash_storm_threshold=1)
    monitor = app.monitor
    async with app.run_test(size=SIZE) as pilot:
        agents = app.dashboard.query_one("#agents-table", AgentsTable)
        await wait_for(pilot, lambda: {first.key, second.key} <= set(agents.keys), message="rows")
        first.crash()
        second.crash()
        await wait_for(
            pilot,
            lambda: header(app)[0].startswith(" CRITICAL  · crash storm: 2/h"),
            timeout=15,
            message="header names the crash storm",
        )
        await pilot.press("3", "a")  # the bug list stands for no issue: choose from the list
        await wait_for(pilot, lambda: isinstance(app.screen, IssuesScreen), message="issues")
        table = app.screen.query_one(KeyedTable)
        assert table.keys[0] == IssueType.CRASH_STORM  # the worst first
        await pilot.press("a")
        await wait_for(pilot, lambda: monitor.list_acks(), message="acked")
        (ack,) = monitor.list_acks()
        assert ack.issue_id == "crash_storm" and ack.count_at_ack == 2
        await pilot.press("escape")
        await wait_for(pilot, lambda: header(app)[0].startswith(" DEGRADED "), message="status")
        assert "1 acked" in header(app)[0]
