"""A real orchestrator state directory with real agent processes, for driving the console.

Agents are small Python programs started by the test (so they are the
orchestrator's agents, in the real ``agent_state.json`` format). Each logs a few
lines to ``logs/<type>-<task>-<pid>.log`` (what ``agent_log_pattern`` finds),
then waits for its trigger file; when the test touches it, the agent consumes
it and dies of a real ``ImportError`` with a real traceback. A respawned run
(same command) waits for a new trigger, so a test decides when each run crashes.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot

from ohm_tui.engine import timeutil
from ohm_tui.engine.monitor import OrchestratorHealthMonitor
from tests.helpers import ProcessReaper

AGENT_SCRIPT = """\
import os, sys, time
logs, kind, task, trigger = sys.argv[1:5]
extra = sys.argv[5] if len(sys.argv) > 5 else None
fd = os.open(os.path.join(logs, f"{kind}-{task}-{os.getpid()}.log"),
             os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
os.dup2(fd, 1)
os.dup2(fd, 2)
print(f"{kind} starting on {task}", flush=True)
if extra:
    print(extra, flush=True)
while not os.path.exists(trigger):  # the agent's own idle loop: the test says when to die
    time.sleep(0.01)
try:
    os.unlink(trigger)
except FileNotFoundError:
    pass
print("loading skills", flush=True)
raise ImportError("cannot import name 'SkillNames' from 'coffee_maker.autonomous.skill_loader'")
"""

EVIL_LINE = "[bold red]x[/] [link=http://e.vil]y[/link] \x1b[31mred\x1b]52;c;SGVsbG8=\x07"


@dataclass
class Agent:
    """One agent process the test started (the orchestrator's, not ohm's)."""

    popen: subprocess.Popen[bytes]
    kind: str
    task: str
    trigger: Path
    started: float

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def key(self) -> str:
        """ohm's identity for this run: ``"<pid>@<int(started_at)>"``."""
        return f"{self.pid}@{int(self.started)}"

    def crash(self) -> None:
        """Make this run (or the next respawned one) die of its ImportError."""
        self.trigger.touch()


@dataclass
class StateDir:
    """``data/`` with ``orchestrator/agent_state.json`` and ``logs/``, as a real orchestrator."""

    root: Path
    reaper: ProcessReaper
    agents: list[Agent] = field(default_factory=list)
    dead: dict[str, dict[str, Any]] = field(default_factory=dict)
    monitors: list[OrchestratorHealthMonitor] = field(default_factory=list)
    _argv: dict[int, list[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.data = self.root / "data"
        self.logs = self.data / "logs"
        self.logs.mkdir(parents=True)
        self.triggers = self.root / "triggers"
        self.triggers.mkdir()
        self.script = self.root / "agent.py"
        self.script.write_text(AGENT_SCRIPT)

    @property
    def state_path(self) -> Path:
        return self.data / "orchestrator" / "agent_state.json"

    def start_agent(self, kind: str, task: str, *, line: str | None = None) -> Agent:
        trigger = self.triggers / f"{kind}-{task}"
        argv = [sys.executable, str(self.script), str(self.logs), kind, task, str(trigger)]
        if line is not None:
            argv.append(line)
        started = time.time()
        popen = subprocess.Popen(argv, stdin=subprocess.DEVNULL, cwd=self.root)
        self.reaper.add(popen)
        # Reap it the moment it dies, as an orchestrator would: no zombie left behind.
        threading.Thread(target=popen.wait, daemon=True).start()
        agent = Agent(popen, kind, task, trigger, started)
        self.agents.append(agent)
        self._argv[popen.pid] = argv
        self.write_state()
        return agent

    def add_dead_entry(self, kind: str, task: str) -> int:
        """A "running" entry whose process is long gone (what ``z`` cleans)."""
        started = time.time()
        popen = subprocess.Popen([sys.executable, "-c", "pass"])
        popen.wait()
        self.dead[str(popen.pid)] = self._entry(popen.pid, kind, task, ["agent"], started)
        self.write_state()
        return popen.pid

    def write_state(self) -> None:
        active = {
            str(a.pid): self._entry(a.pid, a.kind, a.task, self._argv[a.pid], a.started)
            for a in self.agents
        }
        active.update(self.dead)
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"active_agents": active, "completed_agents": []}, indent=2))
        tmp.chmod(0o644)
        tmp.replace(self.state_path)

    def read_state(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.state_path.read_text())
        return data

    def config(self, **extra: Any) -> dict[str, Any]:
        cfg: dict[str, Any] = {
            "data_dir": str(self.data),
            "health_check_interval": 2.0,
            "respawn_backoff_base": 0.2,
            "orchestrator_match": ["no-such-orchestrator-for-this-test"],
            "tickets_dir": "tickets",
            "stop_grace_period": 1.0,
            "auto_fix": False,
        }
        cfg.update(extra)
        return cfg

    def monitor(self, **extra: Any) -> OrchestratorHealthMonitor:
        monitor = OrchestratorHealthMonitor(self.config(**extra), name="tui-test")
        self.monitors.append(monitor)
        return monitor

    def cleanup(self) -> None:
        for monitor in self.monitors:
            try:
                spawned = [
                    e.agent_pid
                    for e in monitor.events(limit=1000)
                    if e.kind in ("respawned", "spawned") and e.agent_pid
                ]
            except Exception:
                spawned = []
            for pid in spawned:
                self.reaper.add(pid)
            monitor.close()

    def _entry(
        self, pid: int, kind: str, task: str, argv: list[str], started: float
    ) -> dict[str, Any]:
        return {
            "pid": pid,
            "agent_type": kind,
            "task_id": task,
            "task_type": "create_spec",
            "priority_number": 20,
            "command": shlex.join(argv),
            "started_at": timeutil.iso_local_naive(started),
            "status": "running",
        }


@pytest.fixture
def state_dir(tmp_path: Path, reaper: ProcessReaper) -> Iterator[StateDir]:
    sd = StateDir(tmp_path, reaper)
    try:
        yield sd
    finally:
        sd.cleanup()


async def wait_for(
    pilot: Pilot[Any],
    predicate: Callable[[], object],
    timeout: float = 10.0,
    message: str = "",
) -> None:
    """Let the app run until ``predicate()`` is true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:g}s: {message or predicate}")
        await pilot.pause(0.02)
