"""The console's `r` and `k` on live agents, and a respawn that cannot start, through
Pilot over real agent processes (issue 9, items 1, 4 and 6)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
from textual.widgets import Static

from ohm_tui.tui.messages import ActionDone
from ohm_tui.tui.screens.confirm import ConfirmScreen
from tests.tui.conftest import Agent, StateDir, wait_for
from tests.tui.test_console import (
    SIZE,
    Recorder,
    agent_pids,
    console,
    crash_rows,
    header_text,
    table,
    watched,
)


def copies(agent: Agent) -> list[int]:
    """Live processes of this test agent's script on its trigger (ohm's runner excluded)."""
    out = []
    for p in psutil.process_iter(["pid", "name", "cmdline", "status"]):
        cmd = p.info["cmdline"] or []
        if p.info["status"] == psutil.STATUS_ZOMBIE or p.info["name"] == "ohm-runner":
            continue
        if str(agent.trigger) in cmd and len(cmd) > 1 and cmd[1].endswith("agent.py"):
            out.append(p.info["pid"])
    return out


def start_in(state_dir: StateDir, home: Path, kind: str, task: str) -> Agent:
    """An orchestrator's agent running in ``home`` (its entry names no directory)."""
    home.mkdir(parents=True, exist_ok=True)
    shutil.copy(state_dir.script, home / "agent.py")
    trigger = state_dir.triggers / f"{kind}-{task}"
    argv = [sys.executable, "agent.py", str(state_dir.logs), kind, task, str(trigger)]
    popen = subprocess.Popen(argv, stdin=subprocess.DEVNULL, cwd=home)
    state_dir.reaper.add(popen)
    threading.Thread(target=popen.wait, daemon=True).start()
    agent = Agent(popen, kind, task, trigger, time.time())
    state_dir.agents.append(agent)
    state_dir._argv[popen.pid] = argv
    state_dir.write_state()
    return agent


async def test_r_on_a_running_agent_is_a_restart_and_leaves_one_copy(state_dir: StateDir) -> None:
    home = state_dir.root / "orchestrator-home"
    agent = start_in(state_dir, home, "architect", "spec-20")
    assert Path.cwd() != home
    monitor = state_dir.monitor()
    recorder = Recorder()
    app = console(monitor)
    async with app.run_test(size=SIZE, message_hook=recorder) as pilot:
        agents = table(app, "agents-table")
        await wait_for(pilot, lambda: agent.key in agents.keys, message="agent row")
        assert agents.move_to_key(agent.key)
        await pilot.press("r")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), message="confirm")
        body = str(app.screen.query_one("#confirm-body", Static).content)
        assert f"Restart architect PID {agent.pid}" in body
        assert "is running: it will be stopped first" in body
        assert "1. stop" in body and "2. run:" in body
        assert f"(in {home})" in body  # where it ran, not where ohm runs
        await pilot.press("y")
        await wait_for(pilot, lambda: recorder.of(ActionDone), timeout=15, message="restarted")
        (done,) = recorder.of(ActionDone)
        assert done.result.ok, done.result.message
        new_pid = done.result.new_pid
        assert new_pid is not None and new_pid != agent.pid
        await wait_for(pilot, lambda: agent.popen.poll() is not None, message="old one stopped")
        await wait_for(pilot, lambda: new_pid in agent_pids(app), message="new row")
        assert copies(agent) == [new_pid]
        assert psutil.Process(new_pid).cwd() == str(home)
        assert crash_rows(app) == []  # restarted by the operator: no crash
        assert monitor.crashes() == []


async def test_k_records_a_stop_not_a_crash(state_dir: StateDir) -> None:
    agent = state_dir.start_agent("architect", "spec-20")
    monitor = state_dir.monitor(auto_fix=True, health_check_interval=0.3)
    recorder = Recorder()
    app = console(monitor)
    async with app.run_test(size=SIZE, message_hook=recorder) as pilot:
        agents = table(app, "agents-table")
        await wait_for(pilot, lambda: agent.key in agents.keys, message="agent row")
        await wait_for(pilot, lambda: watched(monitor, agent.pid), message="death watch")
        assert agents.move_to_key(agent.key)
        await pilot.press("k")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), message="confirm")
        await pilot.press("y")
        await wait_for(pilot, lambda: recorder.of(ActionDone), message="stopped")
        assert recorder.of(ActionDone)[0].result.ok
        checked = monitor.check().checked_at
        await wait_for(
            pilot,
            lambda: app.snapshot is not None and app.snapshot.report.checked_at > checked,
            message="a later snapshot",
        )
        assert crash_rows(app) == []
        assert monitor.crashes() == []
        assert "stopped_by_operator" in [e.kind for e in monitor.events()]
        assert "respawned" not in [e.kind for e in monitor.events()]
        assert copies(agent) == []


async def test_a_respawn_that_cannot_start_shows_in_the_table_and_the_header(
    state_dir: StateDir,
) -> None:
    home = state_dir.root / "gone"
    agent = start_in(state_dir, home, "architect", "spec-8")
    monitor = state_dir.monitor()
    app = console(monitor)
    async with app.run_test(size=(80, 24)) as pilot:
        agents = table(app, "agents-table")
        await wait_for(pilot, lambda: agent.key in agents.keys, message="agent row")
        shutil.rmtree(home)
        monitor.auto_fix = True  # as `f` would
        agent.crash()
        await wait_for(
            pilot,
            lambda: (
                agent.key in agents.keys
                # "respawn failed (exit 1)" when a check read the exit status of the zombie
                and agents.cell_text(agent.key, "status").startswith("respawn failed")
            ),
            message="respawn failed row",
        )
        assert "does not exist" in agents.cell_text(agent.key, "last")
        await wait_for(pilot, lambda: "1 given up" in header_text(app), message="header count")
        assert "DEGRADED" in header_text(app)
