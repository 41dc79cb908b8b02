"""The monitor's state and services: config, store, event bus, fixer, reporter, the lock."""

from __future__ import annotations

import getpass
import json
import logging
import os
import re
import shlex
import threading
import time
from collections import deque
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ohm_tui.engine import timeutil
from ohm_tui.engine.actions.fixer import Fixer
from ohm_tui.engine.bugs.reporting import BugReporter
from ohm_tui.engine.bugs.tracker import BugTracker
from ohm_tui.engine.config import Config, load_config
from ohm_tui.engine.context import CheckState, EngineContext
from ohm_tui.engine.detect.blocked import OutputBlockWatch
from ohm_tui.engine.model import (
    AgentRecord,
    Event,
    ExitInfo,
    HealthReport,
    Observation,
    RawProc,
    Status,
    split_command,
)
from ohm_tui.engine.monitor.events import EventBus
from ohm_tui.engine.monitor.loopstate import EngineLoopState
from ohm_tui.engine.notify import Notifier
from ohm_tui.engine.sources import statefile
from ohm_tui.engine.sources.invocations import CostTracker, invocations_path
from ohm_tui.engine.sources.logfind import LogFinder
from ohm_tui.engine.sources.registry import SourceSet
from ohm_tui.engine.store import Store, StoreError
from ohm_tui.engine.system import procs
from ohm_tui.engine.system.pidwatch import PidWatcher
from ohm_tui.engine.system.spawner import Spawner

log = logging.getLogger("ohm.monitor")

ConfigSource = Config | Mapping[str, Any] | str | os.PathLike[str] | None

FIXER_LEASE = "fixer"
CWD_CACHE_MAX = 4096  # working directories remembered for agents seen alive
OPERATOR_STOP_LOOKBACK = 86400.0  # an operator's stop older than this no longer explains a death
EVENT_CHECK_GAP = 1.0  # seconds: at most one event-driven full check this often


class MonitorBase:
    """The monitor's state and services: config, store, event bus, fixer, reporter, the lock."""

    def __init__(
        self,
        config: ConfigSource = None,
        *,
        data_dir: str | os.PathLike[str] | None = None,
        read_only: bool = False,
        name: str | None = None,
    ) -> None:
        self.config: Config = load_config(config, data_dir=data_dir)
        self._read_only = read_only  # fixed for the monitor's life: see ``read_only``
        self.auto_fix = self.config.auto_fix and not read_only
        self.name = name or f"api:{os.getpid()}"
        me = procs.read_proc(os.getpid())
        self._holder_create_time = me.start_time if me else time.time()
        self._holder = f"{self.name}:{os.getpid()}:{self._holder_create_time:.3f}"
        self._lock = threading.RLock()
        self._store: Store | None = None
        self._store_error: str | None = None
        # What the last check saw, as actions read it (``_observations``,
        # ``_state_ok`` and ``_last_view`` below are views of it).
        self._check_state = CheckState()
        self._sources = SourceSet(self.config)
        self._alive_keys: set[str] = set()
        # Exact start time of each run seen alive: a PID reused within
        # ``pid_start_tolerance`` of the file's ``started_at`` is still told apart.
        self._create_times: dict[str, float] = {}
        # Each live run's working directory, read when first seen alive: its respawn
        # runs there even when its entry names none (bounded: pruned to listed runs).
        self._proc_cwds: dict[str, str] = {}
        self._orch_cwd: tuple[int, str | None] | None = None
        self._operator_stopped: dict[str, bool] = {}
        # Tasks whose respawn could not start (old agent key -> row), as of the last check.
        self._failed_respawns: dict[str, dict[str, Any]] = {}
        # Exit records of listed runs already consumed (their files are gone).
        self._ingested: dict[str, ExitInfo] = {}
        self._seen_cache: set[str] = set()
        # Closed runs (completed_agents) already looked at for a hidden crash: bounded
        # by the entries listed there now.
        self._closed_judged: set[str] = set()
        self._dead_since: dict[str, float] = {}
        self._log_offsets: dict[str, int] = {}
        self._log_inodes: dict[str, int | None] = {}
        self._write_error: str | None = None  # first failed history write of this check
        self._logs = LogFinder(self.config)
        self._orch_scan: tuple[dict[int, RawProc], list[int]] | None = None
        # First sight of each zombie (pid, start time): only a lingering one is news.
        self._zombie_since: dict[tuple[int, float], float] = {}
        # The loop's last heartbeat (its mark), its age when first seen, monotonic then.
        self._heartbeat_seen: tuple[float, float, float] | None = None
        # Exit codes read from agents' zombies, kept once the parent has reaped them.
        self._death_exits: dict[str, ExitInfo] = {}
        # The fast death path: deaths the pid watcher reported, not yet recorded (its
        # thread only); crashes recorded, not yet acted on (any thread takes one).
        self._deaths_queued: deque[tuple[str, float]] = deque()
        self._to_act: deque[int] = deque()
        # The state file's last view by run key (the death path looks runs up in it).
        self._fresh_index: tuple[statefile.AgentStateView, dict[str, AgentRecord]] | None = None
        self._cpu = procs.CpuSampler()
        self._blocked = OutputBlockWatch()
        self._last_report: HealthReport | None = None
        self.last_check_seconds: float | None = None  # how long the last check took
        self._last_status: Status | None = None
        self._events = EventBus(lambda: self.store, lambda: self._store)
        # Shared with the background loop (``loop.EngineLoop``): wake-ups, the watcher.
        self.loop_state = EngineLoopState()
        self._is_fixer = False
        self.notifier = Notifier(self.config)
        # Starts agents; owns their runners and the warm spare (closed by ``stop()``).
        self.spawner = Spawner(name=self.name)
        self.context = EngineContext(
            config=self.config,
            notifier=self.notifier,
            sources=self._sources,
            emit=self.event,
            open_store=lambda: self.store,
            holder=self._holder,
            lock=self._lock,
            spawner=self.spawner,
            process_cwd=self.process_cwd,
            orchestrator_cwd=self.orchestrator_cwd,
        )
        self.fixer = Fixer(self.context, self._check_state, on_restart_failed=self._restart_failed)
        self.reporter = BugReporter(self.context)
        self.cost = CostTracker(
            invocations_path(self.config.data_dir),
            lifecycle_db=self.config.database_path,
            budget_per_hour=self.config.cost_budget_per_hour,
        )

    @property
    def _observations(self) -> dict[str, Observation]:
        return self._check_state.observations

    @_observations.setter
    def _observations(self, value: dict[str, Observation]) -> None:
        self._check_state.observations = value

    @property
    def _state_ok(self) -> bool:
        return self._check_state.state_ok

    @_state_ok.setter
    def _state_ok(self, value: bool) -> None:
        self._check_state.state_ok = value

    @property
    def _last_view(self) -> statefile.AgentStateView | None:
        return self._check_state.last_view

    @_last_view.setter
    def _last_view(self, value: statefile.AgentStateView | None) -> None:
        self._check_state.last_view = value

    def _restart_failed(self, message: str) -> None:
        self.reporter.restart_failed(message)

    @property
    def read_only(self) -> bool:
        """An observer: nothing is written, nothing acted on. Set when the monitor is
        made (its store is opened to match) and never changed afterwards."""
        return self._read_only

    @property
    def store(self) -> Store:
        """The database, opened on first use; raises ``StoreError`` when unusable."""
        with self._lock:
            if self._store is None:
                try:
                    self._store = Store(self.config.database_path, read_only=self.read_only)
                    self._store_error = None
                    self._events.start_after_newest(self._store)
                except StoreError as exc:
                    self._store_error = str(exc)
                    raise
            return self._store

    @property
    def tracker(self) -> BugTracker:
        return BugTracker(self.store, self.config, self.notifier)

    def _emit_new_events(self) -> None:
        """Hand events written since the last call to listeners (any process wrote them)."""
        self._events.deliver()

    def event(self, kind: str, message: str, **fields: Any) -> Event | None:
        """Record a timeline event and tell listeners; storage trouble is logged, not raised."""
        return self._events.emit(kind, message, **fields)

    def _require_writable(self, action: str) -> None:
        if self.read_only:
            raise PermissionError(f"{action} refused: ohm is in read-only mode")

    def wake(self) -> None:
        """Ask the background loop for a full check soon. However many ask, and however
        often (a crash storm asks dozens of times a second), it runs at most one
        event-driven check every ``EVENT_CHECK_GAP`` seconds."""
        self.loop_state.wake()

    def is_fixer(self) -> bool:
        """Take or renew the fixer lease: only one monitor per data dir fixes at a time."""
        if self.read_only:
            return False
        try:
            self._is_fixer = self.store.acquire_lease(
                FIXER_LEASE,
                self._holder,
                ttl=self.config.lease_ttl,
                now=timeutil.now(),
                holder_pid=os.getpid(),
                holder_create_time=self._holder_create_time,
                is_alive=procs.is_running,
            )
        except StoreError as exc:
            log.warning("fixer lease unavailable: %s", exc)
            self._is_fixer = False
        return self._is_fixer

    @property
    def running(self) -> bool:
        return self.loop_state.running

    @property
    def _watcher(self) -> PidWatcher | None:
        """The pid watcher of background mode (``None`` otherwise)."""
        return self.loop_state.watcher

    def _remember_cwd(self, key: str, pid: int) -> None:
        cwd = procs.read_cwd(pid)
        if cwd is None:
            return
        if len(self._proc_cwds) >= CWD_CACHE_MAX:
            self._proc_cwds.pop(next(iter(self._proc_cwds)))
        self._proc_cwds[key] = cwd

    def process_cwd(self, key: str) -> str | None:
        """The working directory the run ``key`` had while it was alive, if seen."""
        return self._proc_cwds.get(key)

    def orchestrator_cwd(self) -> str | None:
        """The orchestrator's working directory: its process's (read once per process,
        kept after it is gone), else ``orchestrator_restart_cwd``, else the directory
        holding its state directory (it names ``data/...`` relative to where it runs)."""
        pid = self.fixer.orchestrator_pid
        if pid is not None and (self._orch_cwd is None or self._orch_cwd[0] != pid):
            self._orch_cwd = (pid, procs.read_cwd(pid) or (self._orch_cwd or (0, None))[1])
        if self._orch_cwd is not None and self._orch_cwd[1]:
            return self._orch_cwd[1]
        if self.config.orchestrator_restart_cwd:
            return os.path.abspath(os.path.expanduser(self.config.orchestrator_restart_cwd))
        return str(Path(self.config.data_dir).expanduser().absolute().parent)


def _ohm_record(row: Mapping[str, Any]) -> AgentRecord:
    """An ``ohm_agents`` row as an ``AgentRecord``."""
    argv = row.get("argv") or []
    if isinstance(argv, str):
        try:
            argv = json.loads(argv)
        except ValueError:
            argv = split_command(argv)
    return AgentRecord(
        key=str(row["agent_key"]),
        pid=int(row["pid"]),
        agent_type=str(row.get("agent_type") or "agent"),
        task_id=row.get("task_id"),
        source="ohm_spawned",
        command=list(argv),
        command_text=str(row.get("command_text") or shlex.join(argv)),
        cwd=row.get("cwd"),
        log_file=row.get("log_file"),
        started_at=row.get("started_ts") or row.get("create_time"),
        status="running",
        create_time=row.get("create_time"),
        raw=dict(row),
    )


def failure_reason(message: str) -> str:
    """Why a respawn failed, without the "respawn 1/3 of X failed:" preamble."""
    text = message.split(" failed: ", 1)[-1]
    return re.sub(r"^\[Errno \d+\] ", "", text)


def _task_of(tk: str) -> str | None:
    """The task id of a ``task_key`` (``None`` for a per-type key)."""
    return tk.split(":", 1)[1] if tk.startswith("task:") else None


def _opt_text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _operator() -> str:
    """Who is acknowledging, when the caller does not say: the login name."""
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no USER and no passwd entry (containers)
        return f"uid {os.getuid()}"
