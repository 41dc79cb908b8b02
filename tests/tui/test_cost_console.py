"""The console's cost column and header figure, over a real ``claude_invocations.db``
and real agent processes, with ``TZ`` 14 hours from UTC (naive UTC times read as
local would put every call outside "the last hour")."""

from __future__ import annotations

import time

import pytest

from ohm_tui.tui.agents_table import AgentsTable
from ohm_tui.tui.app import make_app
from ohm_tui.tui.header import HeaderStrip
from tests.invocations_db import InvocationsDB
from tests.tui.conftest import StateDir, wait_for
from tests.tui.test_console import rendered

pytestmark = pytest.mark.usefixtures("far_from_utc")  # UTC+14: times read wrongly show


def spend(state_dir: StateDir) -> None:
    """$0.75 on spec-20 within the last hour; nothing on impl-7."""
    db = InvocationsDB(state_dir.data)
    now = time.time()
    for minutes, cost in ((30, 0.50), (5, 0.25)):
        db.call(
            "architect",
            invoked=now - minutes * 60,
            completed=now - minutes * 60 + 20,
            input_tokens=1000,
            output_tokens=200,
            cost_usd=cost,
            metadata={"task_id": "spec-20"},
        )


@pytest.mark.parametrize("size", [(120, 40), (80, 24)])
async def test_cost_column_and_header_figure(state_dir: StateDir, size: tuple[int, int]) -> None:
    architect = state_dir.start_agent("architect", "spec-20")
    developer = state_dir.start_agent("code_developer", "impl-7")
    spend(state_dir)
    app = make_app(state_dir.monitor())
    app.refresh_interval = 0.2
    async with app.run_test(size=size) as pilot:
        agents = app.dashboard.query_one("#agents-table", AgentsTable)
        await wait_for(pilot, lambda: architect.key in agents.keys, message="architect row")
        await wait_for(pilot, lambda: agents.cell_text(architect.key, "cost") == "$0.75")
        assert agents.cell_text(developer.key, "cost") == "-"  # no call names impl-7
        if size == (120, 40):  # with cost data the column is drawn where there is room
            await pilot.pause()
            assert "cost" in agents.shown_columns and "$0.75" in rendered(agents)
        header = str(app.dashboard.query_one(HeaderStrip).content)
        assert "$0.75/h" in header
        assert "over" not in header


async def test_header_says_over_budget_in_words(state_dir: StateDir) -> None:
    state_dir.start_agent("architect", "spec-20")
    spend(state_dir)
    app = make_app(state_dir.monitor(cost_budget_per_hour=0.5))
    app.refresh_interval = 0.2
    async with app.run_test(size=(80, 24)) as pilot:
        strip = app.dashboard.query_one(HeaderStrip)
        await wait_for(pilot, lambda: "$0.75/h (over $0.50/h budget)" in str(strip.content))
        assert app.snapshot is not None
        assert app.snapshot.report.status == "degraded"
        assert any(i.type == "cost_over_budget" for i in app.snapshot.report.issues)


async def test_no_invocations_db_no_cost_chip(state_dir: StateDir) -> None:
    architect = state_dir.start_agent("architect", "spec-20")
    app = make_app(state_dir.monitor())
    app.refresh_interval = 0.2
    async with app.run_test(size=(120, 40)) as pilot:
        agents = app.dashboard.query_one("#agents-table", AgentsTable)
        await wait_for(pilot, lambda: architect.key in agents.keys, message="architect row")
        assert agents.cell_text(architect.key, "cost") == "-"
        # No cost data at all: no Cost column full of dashes, even where there is room.
        assert "cost" not in agents.shown_columns
        assert "Cost" not in rendered(agents).splitlines()[0]
        header = str(app.dashboard.query_one(HeaderStrip).content)
        assert "$" not in header and "/h" not in header.replace("crashes/h", "")
