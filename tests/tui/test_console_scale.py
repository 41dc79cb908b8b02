"""The agents table at 5,000 agents, at 80x24: a real monitor over a real
``agent_state.json`` of 5,000 entries (the orchestrator's own format), a few of them
real agent processes that really crash.

The 5,000 are ``killed`` entries (``exit_code: -9``), which the real orchestrator
leaves in ``active_agents`` until a later cleanup: listed, never crashes, never
respawned, and no process to start per row. Their start times lie a day back, so
no live process can ever be taken for one of them.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from textual.widgets import Static

from ohm_tui.engine import timeutil
from ohm_tui.tui.agents_table import AgentsTable
from ohm_tui.tui.messages import SnapshotReady
from ohm_tui.tui.screens.agent_detail import AgentDetailScreen
from ohm_tui.tui.screens.confirm import ConfirmScreen
from tests.tui.conftest import StateDir, wait_for
from tests.tui.test_console import Recorder, console, rendered

FLEET = 5000
SMALL = (80, 24)
TYPES = ["architect", "code_developer", "project_manager", "code-reviewer", "assistant"]


def add_fleet(state_dir: StateDir, n: int) -> None:
    """``n`` killed entries in the real format (PIDs as string keys, one command string)."""
    day_ago = time.time() - 86_400
    for i in range(n):
        pid = 3_000_000 + i
        kind = TYPES[i % len(TYPES)]
        entry: dict[str, Any] = {
            "pid": pid,
            "agent_type": kind,
            "task_id": f"task-{i}",
            "task_type": "create_spec",
            "priority_number": i,
            "command": f"poetry run {kind} create-spec --priority={i} --auto-approve",
            "started_at": timeutil.iso_local_naive(day_ago - i * 7),
            "status": "killed",
            "exit_code": -9,
        }
        state_dir.dead[str(pid)] = entry
    state_dir.write_state()


def line_of(table: AgentsTable, key: str) -> int | None:
    """The screen line (0 = header) that draws ``key``, or ``None`` if it is scrolled away."""
    index = table.keys.index(key)
    line = index - table.scroll_offset.y + table.header_height
    return line if table.header_height <= line < table.size.height else None


def drawn(table: AgentsTable, key: str) -> bool:
    """The row of ``key`` is on screen, with its PID, where ``line_of`` says."""
    line = line_of(table, key)
    if line is None:
        return False
    text = rendered(table).splitlines()[line]
    return table.cell_text(key, "pid") in text and table.cell_text(key, "type")[:8] in text


async def test_cursor_filter_and_scroll_survive_refreshes_and_resorts_at_5000_rows(
    state_dir: StateDir,
) -> None:
    live = [state_dir.start_agent(kind, f"live-{n}") for n, kind in enumerate(TYPES)]
    add_fleet(state_dir, FLEET)
    recorder = Recorder()
    app = console(state_dir.monitor())
    app.refresh_interval = 0.5
    async with app.run_test(size=SMALL, message_hook=recorder) as pilot:
        table = app.dashboard.query_one("#agents-table", AgentsTable)
        total = FLEET + len(live)
        await wait_for(pilot, lambda: table.row_count == total, 30, "5,005 rows")
        await wait_for(pilot, lambda: all(a.key in table.keys for a in live), 30, "live rows")
        # Only a screenful is drawn, and no column is squeezed: Cost (no cost data) is gone.
        header = rendered(table).splitlines()[0]
        assert "Cost" not in header and "Type" in header and "Status" in header
        assert len(rendered(table).splitlines()) == table.size.height < 24

        # The cursor deep in the table, mid-screen, on a developer (the filter below keeps it).
        await pilot.press("end", "pageup", "pageup", "down", "down")
        while table.cell_text(table.cursor_key or "", "type") != "code_developer":
            await pilot.press("down")
        chosen = table.cursor_key
        assert chosen is not None and table.cursor_row > FLEET // 2
        line = line_of(table, chosen)
        assert line is not None and 1 < line < table.size.height - 1, (line, table.size)
        chosen_pid = table.cell_text(chosen, "pid")

        async def refreshes(n: int = 2) -> None:
            frames = app.frames
            await wait_for(pilot, lambda: app.frames >= frames + n, 30, f"{n} refreshes")

        def steady() -> None:
            assert table.cursor_key == chosen
            assert app.dashboard.selected_agent is not None
            assert app.dashboard.selected_agent.key == chosen
            assert line_of(table, chosen) == line, (line_of(table, chosen), line)
            assert drawn(table, chosen)

        await refreshes()
        steady()
        # Every re-sort and its reverse: same agent, same screen line.
        for _ in range(9):
            await pilot.press("s")
            steady()
            await pilot.press("S")
            steady()
            await refreshes(1)
            steady()
        await pilot.press("S")  # back to problems first, worst on top
        steady()
        # A crash far away re-sorts it to the top (problems first): nothing moves here.
        assert "problems first" in str(app.dashboard.query_one("#agents").border_title)
        live[0].crash()
        await wait_for(
            pilot,
            lambda: table.cell_text(live[0].key, "status").startswith("crashed"),
            30,
            "crashed row",
        )
        steady()
        assert table.keys.index(live[0].key) == 0  # worst first

        # The filter survives refreshes, and so does the cursor inside it.
        await pilot.press("slash", *"code_dev", "enter")
        await wait_for(pilot, lambda: table.row_count == FLEET // 5 + 1, 10, "filtered")
        assert table.cursor_key == chosen and drawn(table, chosen)
        await refreshes()
        assert table.row_count == FLEET // 5 + 1
        assert all("code_dev" in table.cell_text(k, "type") for k in table.keys)
        assert table.cursor_key == chosen and drawn(table, chosen)

        # Scrolled away from the cursor (a mouse wheel): the top row stays on top.
        await pilot.press("escape")
        await wait_for(pilot, lambda: table.row_count == total, 10, "filter cleared")
        assert table.cursor_key == chosen
        table.scroll_to(y=2500, animate=False, immediate=True)
        await pilot.pause()
        top = table.keys[table.scroll_offset.y]
        await refreshes()
        assert table.keys[table.scroll_offset.y] == top and table.cursor_key == chosen

        # The keys act on the agent under the cursor, wherever it is.
        await pilot.press("end")
        assert table.cursor_row == total - 1 and drawn(table, table.keys[-1])
        await pilot.press("home")
        assert table.cursor_row == 0 and table.scroll_offset.y == 0
        assert table.move_to_key(chosen)
        await pilot.press("k")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), message="confirm")
        assert f"PID {chosen_pid}" in str(app.screen.query_one("#confirm-body", Static).content)
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is app.dashboard, message="back")
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, AgentDetailScreen), message="detail")
        screen = app.screen
        assert isinstance(screen, AgentDetailScreen) and screen.agent.key == chosen
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is app.dashboard, message="back")
        assert table.cursor_key == chosen

    # Every frame's rows came built from the worker, never on the UI thread.
    frames = recorder.of(SnapshotReady)
    assert frames and all(m.agents is not None for m in frames)


async def test_rows_are_built_off_the_ui_thread(state_dir: StateDir) -> None:
    state_dir.start_agent("architect", "spec-20")
    add_fleet(state_dir, 50)
    app = console(state_dir.monitor())
    threads: list[bool] = []
    model = app.dashboard.agents_model
    prepare = model.prepare

    def recording(agents: Any, now: float) -> Any:
        threads.append(threading.current_thread() is threading.main_thread())
        return prepare(agents, now)

    model.prepare = recording  # type: ignore[method-assign]
    async with app.run_test(size=SMALL) as pilot:
        table = app.dashboard.query_one("#agents-table", AgentsTable)
        await wait_for(pilot, lambda: app.frames >= 3 and table.row_count == 51, 30, "frames")
    assert threads and not any(threads), threads


async def test_an_idle_table_draws_nothing_again(state_dir: StateDir) -> None:
    """Refreshes that change nothing shown repaint no line of the agents table: over SSH
    every repainted line is bytes. (A young agent's uptime changes as it ages, but at
    80 columns its column is not drawn.)"""
    young = state_dir.start_agent("architect", "spec-20")
    add_fleet(state_dir, FLEET)
    app = console(state_dir.monitor())
    async with app.run_test(size=SMALL) as pilot:
        table = app.dashboard.query_one("#agents-table", AgentsTable)
        await wait_for(pilot, lambda: table.row_count == FLEET + 1, 30, "rows")
        assert "uptime" not in table.shown_columns and young.key == table.keys[0]
        frames = app.frames
        await wait_for(pilot, lambda: app.frames >= frames + 2, 30, "settled")
        repaints: list[object] = []
        refresh = table.refresh

        def counting(*args: Any, **kw: Any) -> Any:
            repaints.append(args)
            return refresh(*args, **kw)

        table.refresh = counting  # type: ignore[method-assign]
        frames = app.frames
        await wait_for(pilot, lambda: app.frames >= frames + 3, 30, "three idle refreshes")
        assert repaints == []
        await pilot.press("down")  # the cursor moves: its two lines, nothing else
        assert len(repaints) == 2


async def test_moving_the_cursor_does_not_rebuild_the_footer(state_dir: StateDir) -> None:
    """r / k / l are greyed out or not by the agent under the cursor; the footer is
    rebuilt (tens of ms at 5,000 rows) only when that changes, not on every move."""
    state_dir.start_agent("architect", "spec-20")
    add_fleet(state_dir, 200)
    app = console(state_dir.monitor())
    async with app.run_test(size=SMALL) as pilot:
        table = app.dashboard.query_one("#agents-table", AgentsTable)
        await wait_for(pilot, lambda: table.row_count == 201, 30, "rows")
        await pilot.pause()
        rebuilt: list[object] = []
        refresh_bindings = app.dashboard.refresh_bindings

        def counting() -> None:
            rebuilt.append(None)
            refresh_bindings()

        app.dashboard.refresh_bindings = counting  # type: ignore[method-assign]
        await pilot.press("down", "down", "up", "pagedown", "end", "home")
        assert table.cursor_row == 0 and rebuilt == []
        assert app.dashboard.check_action("respawn", ()) is True
        await pilot.press("3")  # the bug list: no agent to act on, r / k greyed out
        assert app.dashboard.check_action("respawn", ()) is None
        await pilot.press("1")
        assert app.dashboard.check_action("respawn", ()) is True
