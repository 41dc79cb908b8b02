"""``OrchestratorHealthMonitor``: the one API that the CLI, the console and an
embedding orchestrator all call.

A check *looks* (and records its own row plus each newly found crash once);
``auto_fix_issues`` and ``report_bugs_if_any`` act on what the last check found.
In background mode (``start()``) a pidfd watcher reports deaths the instant they
happen, so a crash is recorded and respawned in milliseconds; the periodic check
covers everything a death event cannot see (heartbeats, logs, stale entries).

The façade owns four parts and delegates to them, method by method: the check
engine (``checkengine``), the read models (``views``), the background loop
(``loop``) and the operator's actions (``operations``). No part holds the façade.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ohm_tui.engine.actions.fixer import Fixer
from ohm_tui.engine.bugs.reporting import BugReporter
from ohm_tui.engine.bugs.tracker import BugTracker
from ohm_tui.engine.config import Config
from ohm_tui.engine.context import EngineContext
from ohm_tui.engine.model import (
    Ack,
    ActionResult,
    AgentRecord,
    AgentView,
    BugRow,
    CrashRow,
    Event,
    HealthReport,
    Observation,
    RespawnPlan,
    Snapshot,
    task_key,
)
from ohm_tui.engine.monitor.base import ConfigSource
from ohm_tui.engine.monitor.checkengine import CheckEngine
from ohm_tui.engine.monitor.loop import EngineLoop
from ohm_tui.engine.monitor.operations import Operations
from ohm_tui.engine.monitor.views import ReadModel
from ohm_tui.engine.notify import Notifier
from ohm_tui.engine.sources import statefile
from ohm_tui.engine.sources.invocations import CostTracker
from ohm_tui.engine.store import Store
from ohm_tui.engine.system.pidwatch import PidWatcher
from ohm_tui.engine.system.spawner import Spawner

__all__ = ["OrchestratorHealthMonitor", "task_key"]


class OrchestratorHealthMonitor:
    """Watches one orchestrator state directory. Safe to call from several threads.

    A thin façade: every method hands over to one of its parts (see the module).
    """

    def __init__(
        self,
        config: ConfigSource = None,
        *,
        data_dir: str | os.PathLike[str] | None = None,
        read_only: bool = False,
        name: str | None = None,
    ) -> None:
        engine = CheckEngine(config, data_dir=data_dir, read_only=read_only, name=name)
        self._engine = engine
        self._views = ReadModel(engine, engine.lock, engine.config)
        self._loop = EngineLoop(engine, engine.loop_state, engine.lock, engine.config)
        self._ops = Operations(engine, self._views, engine.lock, engine.config)

    # -- the engine's services and state ------------------------------------------

    @property
    def config(self) -> Config:
        return self._engine.config

    @property
    def name(self) -> str:
        return self._engine.name

    @property
    def auto_fix(self) -> bool:
        """Fix what checks find (the console's ``f`` turns it off and on)."""
        return self._engine.auto_fix

    @auto_fix.setter
    def auto_fix(self, value: bool) -> None:
        self._engine.auto_fix = value

    @property
    def read_only(self) -> bool:
        """An observer: nothing is written, nothing acted on. Set when the monitor is
        made (its store is opened to match) and never changed afterwards."""
        return self._engine.read_only

    @property
    def notifier(self) -> Notifier:
        return self._engine.notifier

    @property
    def context(self) -> EngineContext:
        return self._engine.context

    @property
    def spawner(self) -> Spawner:
        """What starts this monitor's agents and owns their runners (closed by ``stop``)."""
        return self._engine.spawner

    @property
    def fixer(self) -> Fixer:
        return self._engine.fixer

    @property
    def reporter(self) -> BugReporter:
        return self._engine.reporter

    @property
    def cost(self) -> CostTracker:
        return self._engine.cost

    @property
    def store(self) -> Store:
        """The database, opened on first use; raises ``StoreError`` when unusable."""
        return self._engine.store

    @property
    def tracker(self) -> BugTracker:
        return self._engine.tracker

    @property
    def last_check_seconds(self) -> float | None:
        """How long the last check took (for ``ohm_check_duration_seconds``)."""
        return self._engine.last_check_seconds

    @property
    def last_report(self) -> HealthReport | None:
        """The last check's report, read without the lock (one reference, swapped whole):
        for senders that must never wait on, or slow, the engine."""
        return self._engine.last_report

    @property
    def running(self) -> bool:
        return self._engine.running

    # What tests and the bench peek at (kept as they were before the split).
    @property
    def _lock(self) -> threading.RLock:
        return self._engine.lock

    @property
    def _observations(self) -> dict[str, Observation]:
        return self._engine.observations

    @property
    def _last_view(self) -> statefile.AgentStateView | None:
        return self._engine._last_view

    @property
    def _watcher(self) -> PidWatcher | None:
        return self._engine._watcher

    def event(self, kind: str, message: str, **fields: Any) -> Event | None:
        """Record a timeline event and tell listeners; storage trouble is logged, not raised."""
        return self._engine.event(kind, message, **fields)

    def is_fixer(self) -> bool:
        """Take or renew the fixer lease: only one monitor per data dir fixes at a time."""
        return self._engine.is_fixer()

    def process_cwd(self, key: str) -> str | None:
        """The working directory the run ``key`` had while it was alive, if seen."""
        return self._engine.process_cwd(key)

    def orchestrator_cwd(self) -> str | None:
        """The orchestrator's working directory: its process's, else
        ``orchestrator_restart_cwd``, else the directory holding its state directory."""
        return self._engine.orchestrator_cwd()

    # -- the check ----------------------------------------------------------------

    def check(self, *, record: bool = True) -> HealthReport:
        """One health check (``record=False`` only looks: see ``Check.check``)."""
        return self._engine.check(record=record)

    def check_health(self) -> dict[str, Any]:
        """One check; the seed's result dict."""
        return self._engine.check_health()

    def auto_fix_issues(self, report: HealthReport | None = None) -> list[ActionResult]:
        """Level 1 and 3 fixes for what the last check found. Idempotent."""
        return self._engine.auto_fix_issues(report)

    def report_bugs_if_any(self, report: HealthReport | None = None) -> list[int]:
        """File or update bugs for persistent failures. Returns the bug numbers touched."""
        return self._engine.report_bugs_if_any(report)

    def watching(self) -> set[int]:
        """PIDs whose death is reported the instant it happens (background mode)."""
        return self._engine.watching()

    def on_death(self, key: str, when: float) -> None:
        """Event path: a watched agent died. Record it (and respawn it) right now."""
        self._engine.on_death(key, when)

    def wake(self) -> None:
        """Ask the background loop for a full check soon (coalesced)."""
        self._engine.wake()

    # -- read models --------------------------------------------------------------

    def snapshot(
        self, *, crash_limit: int = 200, bug_limit: int = 200, record: bool = True
    ) -> Snapshot:
        """Everything a face draws, collected in one go (call from a worker thread)."""
        return self._views.snapshot(crash_limit=crash_limit, bug_limit=bug_limit, record=record)

    def crashes(
        self,
        since: float | None = None,
        *,
        agent_type: str | None = None,
        task_id: str | None = None,
        limit: int | None = None,
    ) -> list[CrashRow]:
        return self._views.crashes(since, agent_type=agent_type, task_id=task_id, limit=limit)

    def crash(self, crash_id: int) -> CrashRow | None:
        return self._views.crash(crash_id)

    def events(self, since: float | None = None, limit: int = 200) -> list[Event]:
        return self._views.events(since, limit)

    def bugs(self, status: str = "open") -> list[BugRow]:
        return self._views.bugs(status)

    def bug(self, number: int | str) -> BugRow:
        return self._views.bug(number)

    def resolve_agent(self, agent: str | int) -> AgentRecord:
        """Find an agent by key, PID or task id (latest run)."""
        return self._views.resolve_agent(agent)

    def agent_log_tail(self, agent_key: str, max_bytes: int = 65536) -> str:
        return self._views.agent_log_tail(agent_key, max_bytes)

    # -- background mode ----------------------------------------------------------

    def start(self) -> None:
        """Run checks, fixes and event-driven crash detection in background threads."""
        self._loop.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._loop.stop(timeout)

    def add_listener(self, callback: Callable[[Event], None]) -> None:
        """Call ``callback(event)`` (from an engine thread) for every new event."""
        self._engine.bus.add_listener(callback)

    def remove_listener(self, callback: Callable[[Event], None]) -> None:
        self._engine.bus.remove_listener(callback)

    # -- the operator's actions ---------------------------------------------------

    def spawn_agent(
        self,
        command: Sequence[str] | str,
        *,
        agent_type: str,
        task_id: str | None = None,
        cwd: str | os.PathLike[str] | None = None,
        env: Mapping[str, str] | None = None,
    ) -> AgentView:
        """Start an agent under ohm's care: output to a log file, exit code always captured."""
        return self._ops.spawn_agent(
            command, agent_type=agent_type, task_id=task_id, cwd=cwd, env=env
        )

    def describe_respawn(self, agent: str | int) -> str:
        """Exactly what ``respawn`` would do, for confirmation prompts and ``--dry-run``."""
        return self._ops.describe_respawn(agent)

    def respawn_plan(self, agent: str | int) -> RespawnPlan:
        """``describe_respawn`` with whether it is a restart (the console's dialog says so)."""
        return self._ops.respawn_plan(agent)

    def respawn(self, agent: str | int) -> ActionResult:
        """Manual respawn: runs even for a given-up agent, and resets its count."""
        return self._ops.respawn(agent)

    def stop_agent(self, agent: str | int) -> ActionResult:
        return self._ops.stop_agent(agent)

    def plan_zombie_cleanup(self) -> list[str]:
        return self._ops.plan_zombie_cleanup()

    def clean_zombies(self, dry_run: bool = False) -> ActionResult:
        return self._ops.clean_zombies(dry_run)

    def file_bug(
        self,
        title: str,
        priority: str,
        description: str = "",
        *,
        assigned_to: str | None = None,
        category: str = "manual",
        related: Mapping[str, Any] | None = None,
    ) -> BugRow:
        return self._ops.file_bug(
            title,
            priority,
            description,
            assigned_to=assigned_to,
            category=category,
            related=related,
        )

    def close_bug(self, number: int | str) -> BugRow:
        return self._ops.close_bug(number)

    def reopen_bug(self, number: int | str) -> BugRow:
        return self._ops.reopen_bug(number)

    def set_bug_priority(self, number: int | str, priority: str) -> BugRow:
        return self._ops.set_bug_priority(number, priority)

    def acknowledge(
        self, issue: str, *, by: str | None = None, for_seconds: float | None = None
    ) -> Ack:
        """Acknowledge a current issue (see ``Operations.acknowledge``)."""
        return self._ops.acknowledge(issue, by=by, for_seconds=for_seconds)

    def unacknowledge(self, issue: str, *, by: str | None = None) -> list[Ack]:
        """Take back the open acks of ``issue`` (see ``Operations.unacknowledge``)."""
        return self._ops.unacknowledge(issue, by=by)

    def list_acks(self, *, include_ended: bool = False, limit: int = 100) -> list[Ack]:
        """Open acknowledgements (expired ones end at the next check), or the history."""
        return self._ops.list_acks(include_ended=include_ended, limit=limit)

    def simulate_crash(
        self, agent_type: str, error: str = "ImportError", task_id: str | None = None
    ) -> AgentView:
        """Start a real agent that really crashes with ``error``, under ohm's care."""
        return self._ops.simulate_crash(agent_type, error, task_id)

    # -- lifetime -----------------------------------------------------------------

    def close(self) -> None:
        self._loop.stop()
        self._engine.close()

    def __enter__(self) -> OrchestratorHealthMonitor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
