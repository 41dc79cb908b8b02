"""Shared pieces of the fault suite: a stand-in orchestrator, monitors, and DB look-ups.

The stand-in orchestrator starts real agent processes and writes a real
``agent_state.json``. Its agents are ``/bin/sh`` one-liners (cheap enough to
start 200 of them) that block on stdin and, when the test closes it, print a
Python traceback to their log and exit 1: a real process that really dies,
with the same log text a crashing Python agent leaves. A respawned run gets
``/dev/null`` as stdin from ohm's runner, so it crashes again at once, which is
what a persistent bug looks like.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from ohm_tui import OrchestratorHealthMonitor
from ohm_tui.engine import timeutil

REPO = Path(__file__).resolve().parents[2]

# $1: the error line printed after the frames. ``read`` returns at EOF on stdin.
CRASH_SCRIPT = (
    "read _line; "
    'printf "%s\\n" "working on the task" "Traceback (most recent call last):" '
    '"  File \\"/srv/proj/agents/worker.py\\", line 12, in <module>" "    run()" '
    '"  File \\"/srv/proj/agents/worker.py\\", line 8, in run" "    step()" "$1"; '
    "exit 1"
)
DEFAULT_ERROR = "RuntimeError: upstream API returned 500"


def crash_argv(error: str = DEFAULT_ERROR) -> list[str]:
    """An agent command that waits on stdin, then dies with ``error`` after a traceback."""
    return ["/bin/sh", "-c", CRASH_SCRIPT, "fault-agent", error]


# The orchestrator's own run (stdin is its pipe) crashes when released; a run ohm
# respawned (stdin is /dev/null under the runner) works quietly until killed.
CRASH_ONCE_SCRIPT = f"if [ -p /dev/stdin ]; then {CRASH_SCRIPT}; else exec sleep 600; fi"


def crash_once_argv(error: str = DEFAULT_ERROR) -> list[str]:
    """Like ``crash_argv``, but a respawn fixes it: one crash, one respawn."""
    return ["/bin/sh", "-c", CRASH_ONCE_SCRIPT, "fault-agent", error]


def base_config(data_dir: Path, **extra: Any) -> dict[str, Any]:
    """Fast intervals so that every case is bounded in seconds; no real orchestrator."""
    cfg: dict[str, Any] = {
        "data_dir": str(data_dir),
        "health_check_interval": 0.1,
        "heartbeat_interval": 0.2,
        "respawn_backoff_base": 0.05,
        "respawn_backoff_factor": 2.0,
        "orchestrator_match": [f"no-orchestrator-{uuid.uuid4().hex[:8]}"],
        "tickets_dir": "tickets",
        "lease_ttl": 30.0,
    }
    cfg.update(extra)
    return cfg


@dataclass
class Agent:
    """One agent run the stand-in orchestrator started (its child, so it reaps it)."""

    popen: subprocess.Popen[bytes]
    agent_type: str
    task_id: str
    argv: list[str]
    started: float
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def key(self) -> str:
        return f"{self.pid}@{int(self.started)}"

    def alive(self) -> bool:
        return self.popen.poll() is None

    def release(self) -> None:
        """Close its stdin: the agent prints its traceback and exits 1."""
        if self.popen.stdin is not None and not self.popen.stdin.closed:
            with contextlib.suppress(OSError):
                self.popen.stdin.close()

    def crash(self, timeout: float = 5.0) -> int:
        """Make it die and reap it (a crash, never a zombie of ours)."""
        self.release()
        return self.popen.wait(timeout=timeout)


@dataclass
class Orchestrator:
    """Stand-in for the real orchestrator: starts agents, owns ``agent_state.json``."""

    data_dir: Path
    fmt: str = "real"  # "real": command string, naive local time; "ohm": argv, offsets
    agents: list[Agent] = field(default_factory=list)
    extra_entries: dict[str, dict[str, Any]] = field(default_factory=dict)
    removed: set[int] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(parents=True, exist_ok=True)

    @property
    def state_dir(self) -> Path:
        return self.data_dir / "orchestrator"

    @property
    def state_path(self) -> Path:
        return self.state_dir / "agent_state.json"

    @property
    def logs(self) -> Path:
        return self.data_dir / "logs"

    def start(
        self,
        agent_type: str = "code_developer",
        task_id: str = "impl-1",
        *,
        argv: list[str] | None = None,
        cwd: Path | None = None,
        write: bool = True,
    ) -> Agent:
        """Start an agent with its output in ``logs/<type>-<task>-<pid>.log``, and list it
        in the state file unless ``write`` is False (a batch writes once at the end)."""
        argv = argv or crash_argv()
        pending = self.logs / f"pending-{uuid.uuid4().hex}.log"
        with open(pending, "ab") as fh:  # O_APPEND: the test may add lines too
            popen = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE,
                stdout=fh,
                stderr=subprocess.STDOUT,
                cwd=cwd,
            )
        started = time.time()
        log = self.logs / f"{agent_type}-{task_id}-{popen.pid}.log"
        pending.rename(log)  # the agent keeps writing through its open fd
        agent = Agent(popen, agent_type, task_id, argv, started, log)
        self.agents.append(agent)
        if write:
            self.write()
        return agent

    def entry(self, agent: Agent) -> dict[str, Any]:
        if self.fmt == "ohm":
            return {
                "pid": agent.pid,
                "agent_type": agent.agent_type,
                "task_id": agent.task_id,
                "command": list(agent.argv),
                "started_at": timeutil.iso_utc(agent.started),
                "log_file": str(agent.log),
                "status": "running",
            }
        return {
            "pid": agent.pid,
            "agent_type": agent.agent_type,
            "task_id": agent.task_id,
            "task_type": "implementation",
            "priority_number": 1,
            "command": shlex.join(agent.argv),
            "started_at": timeutil.iso_local_naive(agent.started),
            "status": "running",
        }

    def document(self) -> dict[str, Any]:
        active = {str(a.pid): self.entry(a) for a in self.agents if a.pid not in self.removed}
        active.update(self.extra_entries)
        doc: dict[str, Any] = {"active_agents": active, "completed_agents": []}
        if self.fmt == "ohm":
            doc["format"] = "ohm"
        return doc

    def write(self, doc: dict[str, Any] | None = None) -> bytes:
        """Write the state file atomically, as a careful orchestrator does."""
        payload = json.dumps(self.document() if doc is None else doc, indent=2).encode()
        tmp = self.state_path.with_name(f".{self.state_path.name}.{uuid.uuid4().hex}")
        tmp.write_bytes(payload)
        os.replace(tmp, self.state_path)
        return payload

    def stop_all(self) -> None:
        for a in self.agents:
            if a.popen.poll() is None:
                a.popen.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                a.popen.wait(timeout=5)
            if a.popen.stdin is not None:
                with contextlib.suppress(OSError):
                    a.popen.stdin.close()


# ----------------------------------------------------------------- the database
@contextlib.contextmanager
def db(path: Path) -> Iterator[sqlite3.Connection]:
    """A read connection to ohm's database for assertions (never ohm's own)."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        yield conn
    finally:
        conn.close()


def q(path: Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if not path.exists():
        return []
    with db(path) as conn:
        try:
            return list(conn.execute(sql, params).fetchall())
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                return []
            raise


def count(path: Path, sql: str, params: tuple[Any, ...] = ()) -> int:
    rows = q(path, sql, params)
    return int(rows[0][0]) if rows else 0


def event_kinds(path: Path) -> list[str]:
    return [str(r[0]) for r in q(path, "SELECT kind FROM ohm_events ORDER BY event_id")]


# ----------------------------------------------------------------- clean-up
def kill_ohm_spawned(database: Path) -> None:
    """SIGKILL every agent ohm started (identity checked: pid AND create time)."""
    for pid, create_time in q(database, "SELECT pid, create_time FROM ohm_agents"):
        kill_verified(int(pid), create_time)


def kill_verified(pid: int, create_time: float | None, tolerance: float = 1.0) -> None:
    try:
        p = psutil.Process(pid)
        if create_time is not None and abs(p.create_time() - float(create_time)) > tolerance:
            return  # the PID belongs to someone else now
        p.kill()
    except psutil.Error:
        return


def wait_ohm_children_gone(monitors: list[OrchestratorHealthMonitor], timeout: float = 5.0) -> None:
    """Reap the runners these monitors started (their agents were killed)."""
    deadline = time.monotonic() + timeout
    while any(m.spawner.child_count() for m in monitors) and time.monotonic() < deadline:
        for m in monitors:
            m.spawner.reap_children()
        time.sleep(0.01)


class MonitorFactory:
    """Builds monitors on one data dir and tears everything they started down."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.made: list[OrchestratorHealthMonitor] = []

    @property
    def database(self) -> Path:
        return self.data_dir / "orchestrator.db"

    def __call__(self, **extra: Any) -> OrchestratorHealthMonitor:
        m = OrchestratorHealthMonitor(base_config(self.data_dir, **extra))
        self.made.append(m)
        return m

    def close(self) -> None:
        for m in self.made:
            with contextlib.suppress(Exception):
                m.close()
        kill_ohm_spawned(self.database)
        wait_ohm_children_gone(self.made)


def python_env() -> dict[str, str]:
    """Environment for a child Python that imports ohm_tui and tests from this checkout."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


PY = sys.executable
