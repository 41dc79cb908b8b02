"""The demo orchestrator as released versions run it (stdlib only).

- ``--era 2``: the same agents (real processes that crash, hang and exit), but
  their state in ``agent_lifecycle`` and the heartbeat in ``orchestrator_state``,
  written as the real one does (``lifecycle_db``): ``spawned`` rows, closed by
  task, the crash's output in ``stderr_output``, half the crashes left open.
- ``--era 3``: agents are threads ("sessions"), each running the ``claude`` CLI
  (the fake one shipped next to this file) and recording every call in
  ``claude_invocations.db`` with its tokens and cost. Some calls fail, time out
  or hang; one session fails at once and leaves its ``running`` row behind, and
  a retried task leaves an older ``running`` row stale.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from ohm_tui.demo.lifecycle_db import InvocationsDB, LifecycleDB
from ohm_tui.demo.orchestrator import (
    PACKAGE_PARENT,
    SHUTDOWN_GRACE,
    TASK_KINDS,
    Orchestrator,
    PlannedAgent,
    _exit_status,
    stop_children,
)

CLAUDE = Path(__file__).with_name("claude")
OUTPUT_TAIL = 16384
# Demo seconds of a claude call's timeout; ohm's claude_timeout is set to match.
CLAUDE_TIMEOUT = 60.0
# plan behaviour -> (fake claude behaviour per call, calls)
SESSION_BEHAVIOUR: dict[str, tuple[str, int]] = {
    "complete": ("success", 2),
    "work": ("success", 4),
    "crash-runtime": ("error", 1),
    "crash-timeout": ("timeout", 1),
    "crash-import": ("fail-at-once", 0),
    "hang": ("hang", 1),
    "prompt": ("hang", 1),
    "exit0-fast": ("success", 1),
}


def _tail(path: Path) -> str | None:
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - OUTPUT_TAIL))
            return fh.read().decode("utf-8", "replace")
    except OSError:
        return None


class LifecycleOrchestrator(Orchestrator):
    """Era 2: agents are processes; their state is in ``agent_lifecycle``."""

    def __init__(self, state_dir: Path, **kw: Any) -> None:
        super().__init__(state_dir, **kw)
        self.db = LifecycleDB(state_dir)

    def heartbeat(self, tasks: dict[str, Any]) -> None:
        self.db.heartbeat(
            active_tasks=tasks,
            last_roadmap_update=str(self.last_roadmap_update),
            last_planning=str(time.time()),
        )

    def run_cycle(self) -> None:
        self.cycle += 1
        for child, code in self.reap():
            if code != 0 and self.rng.random() < 0.5:
                continue  # the real loop forgot these: stale "spawned" rows
            self.db.close_task(
                child.planned.task,
                _exit_status(code),
                exit_code=code,
                stderr=_tail(child.log_file) if code else None,
            )
        spawned = self.next_spawns()
        self.children.update({c.popen.pid: c for c in spawned})
        for c in spawned:
            p = c.planned
            self.db.register(
                c.popen.pid,
                p.agent_type,
                p.task,
                shlex.join(c.argv),
                task_type=TASK_KINDS[p.agent_type][3],
                priority_number=p.priority_number,
                spawned_at=c.started_at,
            )
        if self.cycle % 10 == 1:
            self.last_roadmap_update = time.time()
        self.heartbeat({c.planned.task: {"pid": pid} for pid, c in self.children.items()})
        self.log.info("Work loop cycle %d: %d agents running", self.cycle, len(self.children))

    def shutdown(self) -> None:
        self.log.info("Shutting down: stopping %d agents", len(self.children))
        stop_children(self.children.values())
        for child in self.children.values():
            with contextlib.suppress(OSError):
                self.db.kill(child.planned.task)
        self.children.clear()
        self.remove_pid_file()
        self.log.info("Orchestrator stopped")


class SessionOrchestrator(LifecycleOrchestrator):
    """Era 3: agents are threads, each running ``claude`` as a child process."""

    def __init__(self, state_dir: Path, **kw: Any) -> None:
        super().__init__(state_dir, **kw)
        self.calls = InvocationsDB(state_dir)
        self.sessions: dict[str, threading.Thread] = {}
        self.procs: set[subprocess.Popen[bytes]] = set()
        self.lock = threading.Lock()
        self.timeout = CLAUDE_TIMEOUT / self.speed

    def run_cycle(self) -> None:
        self.cycle += 1
        self.sessions = {t: th for t, th in self.sessions.items() if th.is_alive()}
        while not self.stopping and len(self.sessions) < self.max_agents:
            p = self.pending or next(self.plan)
            if p.task in self.sessions:
                self.pending = p
                break
            self.pending = None
            self.cursor += 1
            th = threading.Thread(target=self.session, args=(p,), name=p.task, daemon=True)
            th.start()
            self.sessions[p.task] = th
        if self.cycle % 10 == 1:
            self.last_roadmap_update = time.time()
        self.heartbeat({t: {"thread": th.ident} for t, th in self.sessions.items()})
        self.log.info("Work loop cycle %d: %d sessions", self.cycle, len(self.sessions))

    def session(self, p: PlannedAgent) -> None:
        """One agent: a row with the thread's identifier, then its claude calls."""
        behaviour, calls = SESSION_BEHAVIOUR.get(p.behaviour, ("success", 1))
        command = f"claude --agent {p.agent_type} (session)"
        kind = TASK_KINDS[p.agent_type][3]
        if behaviour == "fail-at-once":
            # It updates its task's rows before its own row is written: that row
            # stays "running" forever.
            self.db.close_task(p.task, "failed", error_message="ImportError: SkillNames")
            self.db.register(
                threading.get_ident(),
                p.agent_type,
                p.task,
                command,
                task_type=kind,
                status="running",
            )
            return
        self.db.register(
            threading.get_ident(),
            p.agent_type,
            p.task,
            command,
            task_type=kind,
            priority_number=p.priority_number,
            status="running",
        )
        error: str | None = None
        for n in range(calls):
            if self.stopping:
                break
            error = self.call(p, behaviour, n)
            if error is not None:
                break
        if not self.stopping:
            self.db.close_task(p.task, "failed" if error else "completed", error_message=error)

    def call(self, p: PlannedAgent, behaviour: str, n: int) -> str | None:
        """One claude call, recorded as the orchestrator records it; the error or None."""
        prompt = f"{p.agent_type} {p.task} step {n + 1}"
        inv = self.calls.start(p.agent_type, prompt, session_id=f"{p.task}-{threading.get_ident()}")
        seconds = max(0.2, p.duration / self.speed / 3)
        env = dict(self.agent_env())
        env["OHM_FAKE_CLAUDE"] = "hang" if behaviour in ("hang", "timeout") else behaviour
        env["OHM_FAKE_CLAUDE_SECONDS"] = f"{seconds:.2f}"
        argv = [sys.executable, str(CLAUDE), "--print", "--output-format", "json", prompt]
        # A hung call is given far longer than its timeout: the session is stuck.
        wait = self.timeout if behaviour == "timeout" else self.timeout * 4
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            cwd=PACKAGE_PARENT,
        )
        with self.lock:
            self.procs.add(proc)
        try:
            out, err = proc.communicate(timeout=wait)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            msg = f"Claude CLI timed out after {int(wait)}s"
            self.calls.finish(inv, "timeout", error=msg, duration_ms=int(wait * 1000))
            return msg
        finally:
            with self.lock:
                self.procs.discard(proc)
        if proc.returncode != 0:
            msg = err.decode("utf-8", "replace").strip()[-500:] or f"exit {proc.returncode}"
            self.calls.finish(inv, "error", error=msg, duration_ms=int(seconds * 1000))
            return msg
        try:
            doc = json.loads(out)
        except ValueError:
            doc = {}
        usage = doc.get("usage") or {}
        self.calls.finish(
            inv,
            "success",
            result=str(doc.get("result", ""))[:200],
            input_tokens=int(usage.get("input_tokens") or 0),
            output_tokens=int(usage.get("output_tokens") or 0),
            cost_usd=float(doc.get("total_cost_usd") or 0.0),
            duration_ms=int(doc.get("duration_ms") or 0),
        )
        return None

    def shutdown(self) -> None:
        self.stopping = True
        with self.lock:
            procs = list(self.procs)
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
        for th in self.sessions.values():
            th.join(timeout=SHUTDOWN_GRACE)
        self.remove_pid_file()
        self.log.info("Orchestrator stopped")
