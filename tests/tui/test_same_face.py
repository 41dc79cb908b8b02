"""The CLI and the console tell the same truths: one status, one unit, no made-up numbers.

A real idle agent (alive, silent, no CPU) is "stalled" in both faces, though the
CLI looks only once; its memory reads the same in both. A real crash shows as
"1 crash/h", and its detail screen names whose crash it is, not a database row id.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from ohm_tui.cli.history import crash_action
from ohm_tui.cli.main import main
from ohm_tui.engine import timeutil
from ohm_tui.engine.monitor import OrchestratorHealthMonitor
from ohm_tui.tui.agents_table import AgentsTable
from ohm_tui.tui.app import make_app
from ohm_tui.tui.header import HeaderStrip
from ohm_tui.tui.keyed_table import KeyedTable
from ohm_tui.tui.screens.crash_detail import CrashDetailScreen
from ohm_tui.tui.timeline_panel import action_text
from tests.helpers import ProcessReaper, spawn_py, wait_until
from tests.tui.conftest import StateDir, wait_for

STALL = {"stalled_after": 1.0, "stalled_cpu_percent": 5.0}
PROMPT = "2025-10-19 19:43:20,588 - agents.architect - INFO - Apply these changes? [y/N]"
IDLE = f"""\
import os, sys, time
with open(os.path.join(sys.argv[1], f"architect-spec-9-{{os.getpid()}}.log"), "w") as log:
    print({PROMPT!r}, file=log, flush=True)
    time.sleep(120)
"""


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    assert main(list(argv)) == 0
    out: str = capsys.readouterr().out
    return out


async def test_an_idle_agent_is_stalled_in_both_faces_with_the_same_units(
    tmp_path: Path, reaper: ProcessReaper, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    (data / "orchestrator").mkdir(parents=True)
    (data / "orchestrator" / "work_loop_state.json").write_text(
        json.dumps({"last_update": time.time(), "active_tasks": {}})
    )
    started = time.time()
    (data / "logs").mkdir()
    idle = reaper.add(spawn_py(IDLE, str(data / "logs")))  # waits at a [y/N] prompt
    entry = {
        "pid": idle.pid,
        "agent_type": "architect",
        "task_id": "spec-9",
        "command": f"{sys.executable} -c 'import time; time.sleep(120)'",
        "started_at": timeutil.iso_local_naive(started),
        "status": "running",
    }
    (data / "orchestrator" / "agent_state.json").write_text(
        json.dumps({"active_agents": {str(idle.pid): entry}, "completed_agents": []})
    )
    (data / "ohm.toml").write_text(
        f'orchestrator_match = ["ohm-test-orch-{tmp_path.name}"]\n'
        + "".join(f"{k} = {v}\n" for k, v in STALL.items())
    )
    d = str(data)

    def cli_status() -> str:
        (agent,) = json.loads(_cli(capsys, "agents", "--json", "--data-dir", d))
        return str(agent["status"])

    # One look, as `ohm agents` takes: it used to say "running" for ever.
    wait_until(lambda: cli_status() == "stalled", timeout=30, interval=0.2)
    cli_row = next(
        line
        for line in _cli(capsys, "agents", "--data-dir", d).splitlines()
        if line.startswith(str(idle.pid))
    )
    assert " stalled " in cli_row

    monitor = OrchestratorHealthMonitor({"data_dir": d, **STALL}, name="same-face")
    app = make_app(monitor)
    app.refresh_interval = 0.2
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            agents = app.dashboard.query_one("#agents-table", AgentsTable)
            await wait_for(pilot, lambda: agents.keys, message="agent row")
            (key,) = agents.keys
            await wait_for(
                pilot,
                lambda: agents.cell_text(key, "status") == "stalled",
                message="console shows stalled",
            )
            memory = agents.cell_text(key, "mem")
            last_line = agents.cell_text(key, "last")
    finally:
        monitor.close()
    assert memory.endswith("iB")  # powers of 1024, as top and htop show memory
    assert f" {memory} " in cli_row  # the same figure, in the same unit
    assert last_line == "INFO - Apply these changes? [y/N]"  # the message, not the asctime
    assert cli_row.endswith(f"  {last_line}")


async def test_a_crash_reads_1_crash_and_its_screen_shows_no_row_id(
    state_dir: StateDir,
) -> None:
    agent = state_dir.start_agent("architect", "spec-20")
    monitor = state_dir.monitor()
    app = make_app(monitor)
    app.refresh_interval = 0.2
    async with app.run_test(size=(120, 40)) as pilot:
        agents = app.dashboard.query_one("#agents-table", AgentsTable)
        await wait_for(pilot, lambda: agent.key in agents.keys, message="agent row")
        agent.crash()
        crashes = app.dashboard.query_one("#crashes-table", KeyedTable)
        await wait_for(pilot, lambda: crashes.keys, message="crash row")
        header = app.dashboard.query_one(HeaderStrip)
        await wait_for(pilot, lambda: "1 crash/h" in str(header.content), message="1 crash/h")
        await pilot.press("2", "enter")
        await wait_for(pilot, lambda: isinstance(app.screen, CrashDetailScreen))
        body: Any = app.screen.query_one("#crash-body")
        title = str(body.border_title)
        assert title == f"Crash of architect [{agent.pid}]"
        assert "#" not in title
        crash = app.screen.crash  # type: ignore[attr-defined]
        assert action_text(crash) == crash_action(crash)  # the CLI says what the console says
