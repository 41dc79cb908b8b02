"""An agent that ended speaks for itself: its last line is its own, not the trailer
ohm's runner appends ("[ohm-runner] agent pid N exited with ..."), and how it ended
(exit code, signal) is shown in the CLI, the agents view, the agent detail screen
and the crash detail screen, also for the runs ohm started itself.

A real orchestrator's agent crashes (traceback, exit 1); ohm respawns it under its
runner; the respawned run says one line and works until the test SIGKILLs it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psutil
from textual.widgets import Static

from ohm_tui.engine.monitor import OrchestratorHealthMonitor
from ohm_tui.tui.app import make_app
from ohm_tui.tui.screens.agent_detail import AgentDetailScreen
from ohm_tui.tui.screens.crash_detail import CrashDetailScreen
from tests.faults.kit import CRASH_SCRIPT, Orchestrator, base_config, kill_ohm_spawned, q
from tests.helpers import wait_until
from tests.tui.conftest import wait_for


def ohm(*argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ohm_tui", *argv],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        env={**os.environ, "COLUMNS": "200"},
    )


OWN_LINE = "respawned run: working on spec-20"
# The orchestrator's run (stdin a pipe) crashes; ohm's respawn says a line and works.
SCRIPT = f'if [ -p /dev/stdin ]; then {CRASH_SCRIPT}; else echo "{OWN_LINE}"; exec sleep 600; fi'


async def test_an_ended_run_shows_its_own_last_line_and_how_it_ended(tmp_path: Path) -> None:
    data = tmp_path / "data"
    orch = Orchestrator(data)
    agent = orch.start("architect", "spec-20", argv=["/bin/sh", "-c", SCRIPT, "agent", "x"])
    monitor = OrchestratorHealthMonitor(
        base_config(
            data,
            auto_fix=True,
            max_respawn_attempts=1,
            respawn_backoff_base=0.0,
            health_check_interval=0.5,
        )
    )
    database = monitor.config.database_path
    try:
        monitor.start()
        wait_until(lambda: agent.pid in monitor.watching(), timeout=15)
        agent.crash()
        wait_until(lambda: q(database, "SELECT pid, create_time FROM ohm_agents"), timeout=15)
        ((pid, create_time),) = q(database, "SELECT pid, create_time FROM ohm_agents")
        log_file = Path(q(database, "SELECT log_file FROM ohm_agents")[0][0])
        wait_until(lambda: OWN_LINE in log_file.read_text(), timeout=15)
        monitor.stop()  # from here on only looks: nothing moves the entry away
        run = psutil.Process(pid)
        assert abs(run.create_time() - create_time) < 1.0  # still that run: SIGKILL it
        run.kill()
        wait_until(lambda: "[ohm-runner]" in log_file.read_text(), timeout=15)
        wait_until(lambda: list(monitor.config.exits_dir_path.glob(f"{pid}-*.json")), timeout=15)

        listed = ohm("agents", "--json", "--data-dir", str(data), cwd=tmp_path)
        (row,) = [a for a in json.loads(listed.stdout) if a["pid"] == pid]
        assert row["last_log_line"] == OWN_LINE  # not the runner's trailer
        assert row["exit_code"] == -9 and row["exit_signal"] == "SIGKILL"
        table = ohm("agents", "--data-dir", str(data), cwd=tmp_path)
        (line,) = [ln for ln in table.stdout.splitlines() if ln.startswith(str(pid))]
        assert "crashed (SIGKILL)" in line and OWN_LINE in line and "[ohm-runner]" not in line

        monitor.check()  # records the crash and consumes the runner's exit record
        assert not list(monitor.config.exits_dir_path.glob(f"{pid}-*.json"))
        monitor.check()  # the record is gone: how it ended is still known
        (view,) = [a for a in monitor.snapshot().agents if a.pid == pid]
        assert view.last_log_line == OWN_LINE
        assert view.exit_code == -9 and view.exit_signal == "SIGKILL"
        (crash,) = [c for c in monitor.crashes() if c.agent_pid == pid]
        assert crash.exit_code == -9

        app = make_app(monitor)
        async with app.run_test(size=(120, 40)) as pilot:
            app.push_screen(AgentDetailScreen(monitor, view))
            await wait_for(
                pilot,
                lambda: (
                    isinstance(app.screen, AgentDetailScreen)
                    and bool(app.screen.query("#agent-info"))
                ),
            )
            info = str(app.screen.query_one("#agent-info", Static).content)
            assert "SIGKILL" in info and "exit code -9" in info
            app.pop_screen()
            app.push_screen(CrashDetailScreen(crash))
            await wait_for(
                pilot,
                lambda: (
                    isinstance(app.screen, CrashDetailScreen) and bool(app.screen.query(Static))
                ),
            )
            shown = "\n".join(str(s.content) for s in app.screen.query(Static))
            assert "exit code: -9 (SIGKILL)" in shown
    finally:
        monitor.close()
        kill_ohm_spawned(database)
        orch.stop_all()
