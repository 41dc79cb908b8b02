"""``OrchestratorHealthMonitor``: the one API that the CLI, the console and an
embedding orchestrator all call.

A check *looks* (and records its own row plus each newly found crash once);
``auto_fix_issues`` and ``report_bugs_if_any`` act on what the last check found.
In background mode (``start()``) a pidfd watcher reports deaths the instant they
happen, so a crash is recorded and respawned in milliseconds; the periodic check
covers everything a death event cannot see (heartbeats, logs, stale entries).
"""

from __future__ import annotations

import contextlib
import dataclasses
import getpass
import json
import logging
import os
import re
import shlex
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ohm_tui.engine import acks, detect, logparse, procs, statefile, timeutil
from ohm_tui.engine.blocked import OutputBlockWatch
from ohm_tui.engine.bugs import BugTracker
from ohm_tui.engine.config import Config, load_config
from ohm_tui.engine.detect import ExitInfo, Observation
from ohm_tui.engine.fixes import Fixer, task_key
from ohm_tui.engine.fmt import count
from ohm_tui.engine.logfind import LogFinder
from ohm_tui.engine.models import (
    OPERATOR_STOPS,
    STATUS_ORDER,
    Ack,
    ActionResult,
    AgentRecord,
    AgentStatus,
    AgentView,
    BugRow,
    CrashRow,
    Event,
    EventKind,
    HealthReport,
    Issue,
    IssueType,
    RespawnPlan,
    Snapshot,
    Status,
    parse_bug_number,
    signal_name,
)
from ohm_tui.engine.notify import Notifier
from ohm_tui.engine.pidwatch import PidWatcher
from ohm_tui.engine.reporting import BugReporter
from ohm_tui.engine.sources import agent_status
from ohm_tui.engine.sources import sessions as session_source
from ohm_tui.engine.sources.invocations import CostTracker, invocations_path
from ohm_tui.engine.sources.registry import SourceSet
from ohm_tui.engine.store import Store, StoreError

log = logging.getLogger("ohm.monitor")

ConfigSource = Config | Mapping[str, Any] | str | os.PathLike[str] | None

FIXER_LEASE = "fixer"
CWD_CACHE_MAX = 4096  # working directories remembered for agents seen alive
OPERATOR_STOP_LOOKBACK = 86400.0  # an operator's stop older than this no longer explains a death
EVENT_CHECK_GAP = 1.0  # seconds: at most one event-driven full check this often


class UnknownBugError(KeyError):
    """Raised for a bug number the tracker does not hold."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown bug"


class UnknownIssueError(KeyError):
    """Raised for an issue (or acknowledgement) that is not there now."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown issue"


class UnknownAgentError(KeyError):
    """Raised for an agent key, PID or task the monitor does not know."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown agent"


class OrchestratorHealthMonitor:
    """Watches one orchestrator state directory. Safe to call from several threads."""

    def __init__(
        self,
        config: ConfigSource = None,
        *,
        data_dir: str | os.PathLike[str] | None = None,
        read_only: bool = False,
        name: str | None = None,
    ) -> None:
        self.config: Config = load_config(config, data_dir=data_dir)
        self.read_only = read_only
        self.auto_fix = self.config.auto_fix and not read_only
        self.name = name or f"api:{os.getpid()}"
        me = procs.read_proc(os.getpid())
        self._holder_create_time = me.start_time if me else time.time()
        self._holder = f"{self.name}:{os.getpid()}:{self._holder_create_time:.3f}"
        self._lock = threading.RLock()
        self._store: Store | None = None
        self._store_error: str | None = None
        self._last_view: statefile.AgentStateView | None = None
        self._state_ok = False
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
        self._dead_since: dict[str, float] = {}
        self._log_offsets: dict[str, int] = {}
        self._log_inodes: dict[str, int | None] = {}
        self._write_error: str | None = None  # first failed history write of this check
        self._logs = LogFinder(self.config)
        self._last_lines: dict[str, tuple[tuple[int, int, int], str | None]] = {}
        self._orch_scan: tuple[dict[int, procs.RawProc], list[int]] | None = None
        # First sight of each zombie (pid, start time): only a lingering one is news.
        self._zombie_since: dict[tuple[int, float], float] = {}
        # The loop's last heartbeat (its mark), its age when first seen, monotonic then.
        self._heartbeat_seen: tuple[float, float, float] | None = None
        # Exit codes read from agents' zombies, kept once the parent has reaped them.
        self._death_exits: dict[str, ExitInfo] = {}
        self._cpu = procs.CpuSampler()
        self._blocked = OutputBlockWatch()
        self._observations: dict[str, Observation] = {}
        self._records_by_pid: dict[int, AgentRecord] = {}
        self._last_report: HealthReport | None = None
        self.last_check_seconds: float | None = None  # how long the last check took
        self._last_status: Status | None = None
        self._listeners: list[Callable[[Event], None]] = []
        self._last_event_id = 0
        self._watcher: PidWatcher | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._check_wanted = False  # a wake-up asked for a full check
        self._last_check_at = float("-inf")  # when the last full check ran (epoch)
        self._is_fixer = False
        self.notifier = Notifier(self.config)
        self.fixer = Fixer(self)
        self.reporter = BugReporter(self)
        self.cost = CostTracker(
            invocations_path(self.config.data_dir),
            lifecycle_db=self.config.database_path,
            budget_per_hour=self.config.cost_budget_per_hour,
        )

    # ------------------------------------------------------------ internals
    @property
    def store(self) -> Store:
        """The database, opened on first use; raises ``StoreError`` when unusable."""
        with self._lock:
            if self._store is None:
                try:
                    self._store = Store(self.config.database_path, read_only=self.read_only)
                    self._store_error = None
                    ids = [e.event_id for e in self._store.list_events(limit=1)]
                    self._last_event_id = ids[0] if ids else 0
                except StoreError as exc:
                    self._store_error = str(exc)
                    raise
            return self._store

    @property
    def tracker(self) -> BugTracker:
        return BugTracker(self.store, self.config, self.notifier)

    def _emit_new_events(self) -> None:
        """Hand events written since the last call to listeners (any process wrote them)."""
        if not self._listeners or self._store is None:
            return
        try:
            new = self._store.list_events(after_id=self._last_event_id, limit=500)
        except StoreError:
            return
        for ev in sorted(new, key=lambda e: e.event_id):
            self._last_event_id = max(self._last_event_id, ev.event_id)
            for cb in list(self._listeners):
                try:
                    cb(ev)
                except Exception:  # a face's bug must not stop the engine
                    log.exception("event listener failed")

    def event(self, kind: str, message: str, **fields: Any) -> Event | None:
        """Record a timeline event and tell listeners; storage trouble is logged, not raised."""
        try:
            ev = self.store.add_event(kind, message, **fields)
        except StoreError as exc:
            log.warning("could not record event %s: %s", kind, exc)
            return None
        self._emit_new_events()
        return ev

    def _exit_infos(self) -> dict[int, ExitInfo]:
        out: dict[int, ExitInfo] = {}
        d = self.config.exits_dir_path
        try:
            entries = list(os.scandir(d))
        except OSError:
            return out
        for entry in entries:
            if not entry.name.endswith(".json"):
                continue
            info = _read_exit_file(Path(entry.path))
            if info is not None:
                out[info.pid] = info
        return out

    def _ohm_records(self) -> list[AgentRecord]:
        return [_ohm_record(row) for row in self.store.list_ohm_agents(running_only=True)]

    def _gather(self, issues: list[Issue]) -> list[AgentRecord]:
        """All agent runs the sources list, newest view of each."""
        records = self._sources.gather(timeutil.now(), issues)
        json_source = self._sources.json
        self._last_view = json_source.view if json_source is not None else None
        self._state_ok = self._sources.json_ok
        with self._logs.one_pass(r for r in records if not r.log_file):
            for rec in records:
                if not rec.log_file:
                    rec.log_file = self._logs.find(rec)
        try:
            ohm = self._ohm_records()
        except StoreError as exc:
            issues.append(Issue(type="storage_error", severity="degraded", error=str(exc)))
            ohm = []
        by_key = {r.key: r for r in records}
        for rec in ohm:
            known = by_key.get(rec.key)
            if known is None:
                records.append(rec)
            else:  # a respawn written back into the state file: enrich it
                known.log_file = known.log_file or rec.log_file
                known.create_time = rec.create_time
                known.cwd = known.cwd or rec.cwd
        return records

    def _from_state_file(self, rec: AgentRecord) -> bool:
        """Listed by a source that could not be read this time (show, never act)."""
        if rec.source in ("real", "ohm"):
            return not self._state_ok
        return not self._sources.ok_for(rec)

    # ------------------------------------------------------------ the check
    def check(self, *, record: bool = True) -> HealthReport:
        """One health check. Side effects: its own ``health_checks`` row, new crashes,
        and a ``status_changed`` event when the status is not the last check's.

        ``record=False`` only looks: no row, crash, event or alert, and no file is
        touched (the runners' exit records stay for the monitor that records them).
        Read commands (``ohm agents``) use it: reading must not change history.
        """
        with self._lock:
            started = time.perf_counter()
            try:
                return self._check(record)
            finally:
                # For ohm_check_duration_seconds: read by the metrics endpoint.
                self.last_check_seconds = time.perf_counter() - started

    def _check(self, record: bool) -> HealthReport:
        with self._lock:
            now = timeutil.now()
            self._last_check_at = now
            issues: list[Issue] = []
            store_ok = True
            try:
                store = self.store
            except StoreError as exc:
                store_ok = False
                issues.append(
                    Issue(
                        type="storage_error",
                        severity="degraded",
                        error=f"{exc}; monitoring live state without history",
                    )
                )
            records = self._gather(issues) if store_ok else self._gather_no_store(issues)
            procs.reap_children()  # our own exited runners: reaping them is bookkeeping, not a fix
            table = procs.scan_processes()
            exits = self._exit_infos() if store_ok else {}
            seen: set[str] = set()
            if store_ok:
                try:
                    unknown = [r.key for r in records if r.key not in self._seen_cache]
                    seen = store.seen(unknown) | self._seen_cache
                except StoreError:
                    seen = set(self._seen_cache)
            observations: list[Observation] = []
            alive_now: list[str] = []
            watching = self._watcher is not None
            for rec in records:
                ex = (
                    exits.get(rec.pid)
                    or self._ingested.get(rec.key)
                    or self._sources.exits.get(rec.key)
                )
                if (
                    ex is not None
                    and rec.started_at is not None
                    and ex.started_at is not None
                    and abs(ex.started_at - rec.started_at) > self.config.pid_start_tolerance
                ):
                    ex = None  # an exit record of an earlier process with this PID
                if rec.create_time is None and rec.key in self._create_times:
                    rec.create_time = self._create_times[rec.key]
                if rec.source == "session":  # a thread: no process to look at
                    obs = session_source.observe(rec, self.config, now)
                else:
                    obs = detect.observe(
                        rec,
                        table=table,
                        config=self.config,
                        now=now,
                        seen_before=rec.key in seen or rec.key in self._alive_keys,
                        exit_info=ex or self._death_exits.get(rec.key),
                        # Seen alive and watched (background mode): gone with its death
                        # event not handled yet, it died just now; the orchestrator's
                        # cleanup gets its grace, as on the event path.
                        dead_since=self._dead_since.get(
                            rec.key, now if watching and rec.key in self._alive_keys else None
                        ),
                        watched=rec.key in self._alive_keys,
                    )
                    self._remember_death(obs)
                if obs.liveness == "alive" and obs.raw is not None:
                    obs.cpu_percent = self._cpu.sample(obs.raw, time.monotonic())
                    alive_now.append(rec.key)
                    self._alive_keys.add(rec.key)
                    if rec.create_time is None:
                        rec.create_time = obs.raw.start_time
                    self._create_times.setdefault(rec.key, obs.raw.start_time)
                    if rec.key not in self._proc_cwds and not rec.cwd:
                        self._remember_cwd(rec.key, rec.pid)
                elif obs.liveness == "dead" and rec.key in self._alive_keys:
                    self._dead_since.setdefault(rec.key, now)
                    if obs.died_at is None:
                        obs.died_at = self._dead_since[rec.key]
                if not self._state_ok and self._from_state_file(rec) and obs.liveness != "alive":
                    # Last good view of a file we cannot read: show, never act.
                    obs.is_crash = False
                    obs.stale_entry = False
                observations.append(obs)
            listed = {r.key for r in records}
            self._forget_deaths(listed, now)
            self._create_times = {k: v for k, v in self._create_times.items() if k in listed}
            self._proc_cwds = {k: v for k, v in self._proc_cwds.items() if k in listed}
            self._operator_stopped = {
                k: v for k, v in self._operator_stopped.items() if k in listed
            }
            self._ingested = {k: v for k, v in self._ingested.items() if k in listed}
            # Per-run state of runs no longer listed goes too: a daemon sees millions.
            self._alive_keys &= listed
            self._seen_cache &= listed  # the store still answers for the others
            self._dead_since = {k: v for k, v in self._dead_since.items() if k in listed}
            self._log_offsets = {k: v for k, v in self._log_offsets.items() if k in listed}
            self._log_inodes = {k: v for k, v in self._log_inodes.items() if k in listed}
            self._logs.retain(listed)
            self.fixer.retain(listed, now)
            self._cpu.forget_missing({(o.raw.pid, o.raw.start_time) for o in observations if o.raw})
            self._write_error = None
            if store_ok and record:
                try:
                    store.mark_seen(alive_now, now)
                    self._seen_cache.update(alive_now)
                except StoreError as exc:
                    self._write_error = str(exc)
                self._record_crashes(observations, now)
                if self._state_ok and self._last_view is not None:
                    self.fixer.note_completed(self._last_view.completed, now)
                if self._sources.completed:
                    self.fixer.note_completed(self._sources.completed, now)
                self._ingest_exits(observations, exits)
            issues.extend(detect.agent_issues(observations, self.config, now))
            issues.extend(self._blocked.issues(observations))
            issues.extend(self._team_status_issues(now, record=store_ok and record))
            if store_ok:
                issues.extend(self._pending_crash_issues(issues))
            issues.extend(self._error_line_issues(observations))
            self._orch_scan = None  # find_orchestrators once per process table
            issues.extend(self._zombie_children_issues(table, observations))
            issues.extend(self._session_issues(records, table))
            orch_issues, last_poll = self._orchestrator_issues(table, now)
            issues.extend(orch_issues)
            cost = self.cost.summary(now)  # None without claude_invocations.db
            issues.extend(self.cost.issues(now))
            crashed_last_hour = 0
            rate: float | None = None
            if store_ok:
                try:
                    crashed_last_hour = store.count_crashes(now - 3600)
                    rate = store.recovery_rate(
                        since=now - 86400, stable_after=self.config.respawn_stable_after, now=now
                    )
                    issues.extend(self.fixer.flapping_issues(now))
                    issues.extend(self.fixer.given_up_issues())
                except StoreError as exc:
                    issues.append(Issue(type="storage_error", severity="degraded", error=str(exc)))
            if store_ok:
                issues.extend(self._respawn_failed_issues(observations))
            if crashed_last_hour > self.config.crash_storm_threshold:
                issues.append(
                    Issue(
                        type=IssueType.CRASH_STORM,
                        severity="critical",
                        error=f"{count(crashed_last_hour, 'crash')} in the last hour "
                        f"(threshold {self.config.crash_storm_threshold})",
                        details={"count": crashed_last_hour, "last_crash_id": self._newest_crash()},
                    )
                )
            if self._write_error is not None:
                issues.append(self._history_issue(self._write_error))
            cost_metrics = {} if cost is None else {"cost_last_hour_usd": cost.last_hour.cost_usd}
            self._annotate_crash_issues(issues)
            self._apply_acks(issues, now, store_ok)
            status: Status = acks.rollup(issues)  # acknowledged issues do not make the status
            active = sum(1 for o in observations if o.liveness == "alive")
            report = HealthReport(
                status=status,
                issues=issues,
                active_agents=active,
                crashed_agents_last_hour=crashed_last_hour,
                respawn_success_rate=rate,
                orchestrator_last_poll=last_poll,
                checked_at=now,
                sources=self._sources.describe(),
                extra_metrics={
                    "zombie_processes": sum(
                        1
                        for i in issues
                        if i.type == "zombie" and i.details.get("kind") != "stale_entries"
                    ),
                    "stale_entries": sum(
                        len(i.details.get("entries", [])) for i in issues if i.type == "zombie"
                    ),
                    "state_file_ok": self._state_ok,
                    **cost_metrics,
                },
            )
            if store_ok and record:
                if self._last_status is None:
                    self._last_status = self._recorded_status()
                try:
                    report.check_id = store.record_health_check(
                        report,
                        zombie_processes=int(report.extra_metrics["zombie_processes"]),
                        orchestrator_responsive=None
                        if last_poll is None
                        else last_poll <= self.config.orchestrator_freeze_threshold,
                        actions=[],
                        bugs=[],
                        monitor=self.name,
                    )
                except StoreError as exc:
                    log.warning("could not record health check: %s", exc)
                    if not any(i.type == "storage_error" for i in report.issues):
                        report.issues.append(self._history_issue(str(exc)))
                    if report.status == "healthy":
                        report.status = status = "degraded"
            self._observations = {o.record.key: o for o in observations}
            self._records_by_pid = {o.record.pid: o.record for o in observations}
            self._last_report = report
            if record:
                self._note_status(status, issues)
            self._emit_new_events()
            return report

    def _newest_crash(self) -> int | None:
        try:
            rows = self.store.list_crashes(limit=1, summary=True)
        except StoreError:
            return None
        return rows[0].crash_id if rows else None

    def _apply_acks(self, issues: list[Issue], now: float, store_ok: bool) -> None:
        """Mark the issues an operator acknowledged; end acks whose issue changed,
        expired or went away (a read-only monitor decides the same, writes nothing)."""
        acks.group(issues)  # every issue gets its issue_id, acked or not
        if not store_ok:
            return
        try:
            open_acks = self.store.open_acks()
        except StoreError as exc:
            log.warning("could not read acknowledgements: %s", exc)
            return
        missing = {ack.ack_id: since for ack, since in open_acks}
        for d in acks.decide(issues, open_acks, now):
            if self.read_only:
                continue
            ack = d.ack
            try:
                if d.end_reason is not None:
                    if self.store.end_ack(ack.ack_id, d.end_reason, now=now):
                        self.event(
                            EventKind.ACK_LIFTED,
                            f"ack of {ack.issue_id} by {ack.by} ended: {d.end_reason}",
                            data={"ack_id": ack.ack_id, "issue_id": ack.issue_id},
                        )
                elif d.missing_since != missing.get(ack.ack_id):
                    self.store.set_ack_missing(ack.ack_id, d.missing_since)
            except StoreError as exc:
                log.warning("could not update acknowledgement %s: %s", ack.ack_id, exc)

    def _note_status(self, status: Status, issues: list[Issue]) -> None:
        """A ``status_changed`` event (and an alert when critical) only when the status
        differs from the last check's."""
        if status != self._last_status:
            causes = "; ".join(
                i.error for i in issues if i.severity == "critical" and i.ack is None
            )[:500]
            if self._last_status is not None or status != "healthy":
                # The event says what the alert says: a face may print only events.
                message = f"status {status}" + (f": {causes}" if status == "critical" else "")
                self.event("status_changed", message[:500], data={"status": status})
            if status == "critical":
                self.notifier.alert("critical", causes)
            self._last_status = status

    def _recorded_status(self) -> Status | None:
        """The status of the last check on record, by any monitor: each ``ohm check``
        is a fresh process, and the same status again is no change."""
        try:
            rows = self.store.list_health_checks(limit=1)
        except StoreError:
            return None
        value = rows[0]["status"] if rows else None
        return value if value in STATUS_ORDER else None

    @staticmethod
    def _history_issue(error: str) -> Issue:
        """A write to the database failed (disk full, read-only): say so, keep watching."""
        return Issue(
            type="storage_error",
            severity="degraded",
            error=f"{error}; history is not being recorded (live monitoring goes on, "
            "and what happens meanwhile is recorded once writing works again)",
        )

    def _gather_no_store(self, issues: list[Issue]) -> list[AgentRecord]:
        records = self._sources.gather(timeutil.now(), issues)
        json_source = self._sources.json
        self._last_view = json_source.view if json_source is not None else None
        self._state_ok = self._sources.json_ok
        return records

    def _session_issues(
        self, records: list[AgentRecord], table: dict[int, procs.RawProc]
    ) -> list[Issue]:
        """Era 3: stuck sessions, and each session's claude processes found."""
        if not any(r.source == "session" for r in records):
            return []
        calls = self._sources.invocations
        session_source.attach_children(
            records, table, self._orchestrator_pids(table), calls.calls if calls else []
        )
        return session_source.issues(records, self.config)

    def _record_crashes(self, observations: list[Observation], now: float) -> None:
        for obs in observations:
            if obs.is_crash and obs.crash is not None:
                self._record_crash(obs, now)

    def _stopped_by_operator(self, key: str, now: float) -> bool:
        """Did an operator stop (or restart) this run? Then its death is no crash.

        Read from the timeline, so a stop made by another process (``ohm stop``
        while the console watches) counts too; remembered per run.
        """
        known = self._operator_stopped.get(key)
        if known is not None:
            return known
        try:
            kind = self.store.operator_stop(key, now - OPERATOR_STOP_LOOKBACK)
        except StoreError:
            return False  # cannot tell: record the crash rather than hide one
        stopped = kind in OPERATOR_STOPS
        self._operator_stopped[key] = stopped
        return stopped

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
        pid = self.fixer._orch_pid
        if pid is not None and (self._orch_cwd is None or self._orch_cwd[0] != pid):
            self._orch_cwd = (pid, procs.read_cwd(pid) or (self._orch_cwd or (0, None))[1])
        if self._orch_cwd is not None and self._orch_cwd[1]:
            return self._orch_cwd[1]
        if self.config.orchestrator_restart_cwd:
            return os.path.abspath(os.path.expanduser(self.config.orchestrator_restart_cwd))
        return str(Path(self.config.data_dir).expanduser().absolute().parent)

    def _record_crash(self, obs: Observation, now: float) -> int | None:
        rec = obs.record
        info = obs.crash
        assert info is not None
        if self._stopped_by_operator(rec.key, now):
            # Stopped on purpose: history has its event; no crash row, no respawn.
            obs.is_crash = False
            obs.crash = None
            self.fixer._noted.add(rec.key)  # nor a fast exit (flapping)
            return None
        actionable = obs.recent and bool(rec.command) and not self.read_only
        skipped = "not respawned: died before ohm was watching"
        if rec.source == "session":
            skipped = session_source.NOT_RESPAWNED
        try:
            crash_id, created = self.store.record_crash(
                agent_key=rec.key,
                agent_pid=rec.pid,
                agent_type=rec.agent_type,
                task_id=rec.task_id,
                crashed_at=obs.died_at or now,
                exit_code=obs.exit_code,
                info=info,
                log_file=rec.log_file,
                command_text=rec.command_text,
                cwd=rec.cwd or rec.worktree_path or self._proc_cwds.get(rec.key),
                source=rec.source,
                action_taken=None if actionable else skipped,
                fix_state="pending" if actionable else "skipped",
            )
        except StoreError as exc:
            log.warning("could not record crash of %s: %s", rec.key, exc)
            self._write_error = self._write_error or str(exc)
            return None
        if created:
            msg = f"{rec.agent_type} pid {rec.pid} crashed"
            if rec.source == "session":
                msg = f"{rec.agent_type} session failed"
            if rec.task_id:
                msg += f" on {rec.task_id}"
            if info.error_type:
                msg += f": {info.error_type}"
                if info.error_message:
                    msg += f": {info.error_message}"
            self.event(
                "crashed",
                msg[:500],
                agent_key=rec.key,
                agent_pid=rec.pid,
                agent_type=rec.agent_type,
                task_id=rec.task_id,
                crash_id=crash_id,
            )
            self.fixer.note_exit(rec, obs, now)
        return crash_id

    def _ingest_exits(self, observations: list[Observation], exits: dict[int, ExitInfo]) -> None:
        """Close ohm-spawned runs whose runner recorded an exit; then drop the exit file."""
        for obs in observations:
            rec = obs.record
            ex = exits.get(rec.pid)
            if ex is None or obs.liveness == "alive":
                continue
            try:
                if self.store.ohm_agent(rec.key) is not None:
                    self.store.mark_ohm_agent_exited(
                        rec.key, exit_code=ex.exit_code, ended_ts=ex.ended_at or timeutil.now()
                    )
                    if not obs.is_crash:
                        self.fixer.note_exit(rec, obs, timeutil.now())
                if ex.path is not None:
                    ex.path.unlink(missing_ok=True)
                    # Its exit code still shows while the run is listed (how it ended).
                    self._ingested[rec.key] = dataclasses.replace(ex, path=None)
            except (StoreError, OSError) as exc:
                log.warning("could not ingest exit of %s: %s", rec.key, exc)

    def _pending_crash_issues(self, found: list[Issue]) -> list[Issue]:
        """Crashes still waiting for a respawn (backoff) stay visible after their
        entry is gone: a check must not say healthy while a fix is pending."""
        known = {i.agent_key for i in found if i.type == "agent_crash"}
        try:
            pending = self.store.pending_crashes()
        except StoreError:
            return []
        return [
            Issue(
                type="agent_crash",
                severity="degraded",
                error=f"{c.error_type or 'crash'}: {c.error_message or ''}".rstrip(": "),
                agent_pid=c.agent_pid,
                agent_type=c.agent_type,
                task_id=c.task_id,
                agent_key=c.agent_key,
                crash_id=c.crash_id,
                action_taken=c.action_taken or "respawn pending",
            )
            for c in pending
            if c.agent_key not in known
        ]

    def _respawn_failed_issues(self, observations: list[Observation]) -> list[Issue]:
        """Crashes whose respawn could not start stay an issue of their own (it can
        be acknowledged) until the task runs again: nothing runs it meanwhile."""
        try:
            rows = self.store.failed_respawns()
        except StoreError:
            return []
        running: dict[str, float] = {}
        for o in observations:
            if o.liveness == "alive":
                tk = task_key(o.record.agent_type, o.record.task_id)
                started = o.record.started_at or 0.0
                running[tk] = max(running.get(tk, 0.0), started)
        failed: dict[str, dict[str, Any]] = {}
        issues = []
        for row in rows:
            tk = str(row["task_key"])
            if running.get(tk, -1.0) >= float(row["ts"]) - 1.0:
                continue  # the task runs again
            crash = self.store.get_crash(row["crash_id"]) if row["crash_id"] else None
            key = str(row["old_key"] or (crash.agent_key if crash else tk))
            failed[key] = {**row, "crash": crash}
            issues.append(
                Issue(
                    type=IssueType.RESPAWN_FAILED,
                    severity="degraded",
                    error=str(row["message"] or "respawn failed"),
                    agent_pid=crash.agent_pid if crash else None,
                    agent_type=crash.agent_type if crash else None,
                    task_id=crash.task_id if crash else _task_of(tk),
                    agent_key=key,
                    crash_id=row["crash_id"],
                    action_taken="respawn failed",
                    details={
                        "task_key": tk,
                        "reason": failure_reason(str(row["message"] or "")),
                        "since": row["ts"],
                    },
                )
            )
        self._failed_respawns = failed
        return issues

    def _error_line_issues(self, observations: list[Observation]) -> list[Issue]:
        issues = []
        for obs in observations:
            rec = obs.record
            if obs.liveness != "alive" or not rec.log_file:
                continue
            offset = self._log_offsets.get(rec.key)
            try:
                st: os.stat_result | None = os.stat(rec.log_file)
            except OSError:
                st = None
            inode = st.st_ino if st is not None else None
            if offset is None:  # first sight: only new lines count
                self._log_offsets[rec.key] = st.st_size if st is not None else 0
                self._log_inodes[rec.key] = inode
                continue
            if inode is not None and self._log_inodes.get(rec.key) not in (None, inode):
                offset = 0  # rotated: a new file under the old name, read from its start
            self._log_inodes[rec.key] = inode
            if st is not None and st.st_size == offset:
                self._log_offsets[rec.key] = offset
                continue  # nothing new: skip opening it (a check looks at every log)
            budget = self.config.log_tail_bytes
            new_offset, text = logparse.read_new(rec.log_file, offset, budget)
            self._log_offsets[rec.key] = new_offset
            lines = logparse.error_lines(text) if text else []
            if new_offset - offset > budget:  # skipped to the tail: the first new line's start
                head = logparse.line_at(rec.log_file, offset)
                lines = (logparse.error_lines(head) if head else []) + lines
            if lines:
                issues.append(
                    Issue(
                        type="agent_errors",
                        severity="degraded",
                        error=f"{count(len(lines), 'new error line')}: "
                        f"{logparse.sanitize(lines[-1])[:200]}",
                        agent_pid=rec.pid,
                        agent_type=rec.agent_type,
                        task_id=rec.task_id,
                        agent_key=rec.key,
                    )
                )
        return issues

    def _orchestrator_pid_file(self) -> int | None:
        p = self.config.agent_state_path.parent / "orchestrator.pid"
        try:
            return int(p.read_text().strip())
        except (OSError, ValueError):
            return None

    def _orchestrator_pids(self, table: dict[int, procs.RawProc]) -> list[int]:
        """``find_orchestrators`` over ``table``, computed once for both of its callers."""
        scan = self._orch_scan
        if scan is not None and scan[0] is table:
            return scan[1]
        found = procs.find_orchestrators(table, self.config.orchestrator_match)
        self._orch_scan = (table, found)
        return found

    def _orchestrator_issues(
        self, table: dict[int, procs.RawProc], now: float
    ) -> tuple[list[Issue], float | None]:
        loop = statefile.read_work_loop_state(self.config.work_loop_state_path, now=now)
        table_hb = self._sources.heartbeat  # era 2+: orchestrator_state.updated_at
        if table_hb is not None and (
            loop.last_update is None or (table_hb.last_update or 0.0) > loop.last_update
        ):
            loop = table_hb
        if loop.problem == "file is missing" or (loop.mtime is None and loop.last_update is None):
            loop_arg = None if loop.mtime is None else loop
        else:
            loop_arg = loop
        if loop_arg is not None and loop_arg.last_update is not None:
            # A new write is a new mtime (a future time reads as "now" on every read).
            mark = loop_arg.mtime if loop_arg.mtime is not None else loop_arg.last_update
            age = self._heartbeat_age(mark, loop_arg.last_update, now)
            loop_arg = dataclasses.replace(loop_arg, last_update=now - age)
        hb_age: float | None = None
        hb = self.config.heartbeat_log_path
        if hb is not None:
            try:
                hb_age = max(0.0, now - hb.stat().st_mtime)
            except OSError:
                hb_age = None
        view_pid = self._last_view.orchestrator_pid if self._last_view else None
        expected = self.config.orchestrator_pid or view_pid or loop.pid
        if expected is None:
            expected = self._orchestrator_pid_file()
        matched = self._orchestrator_pids(table)
        alive: bool | None = None
        stopped = False
        if expected is not None:
            raw = table.get(expected)
            alive = raw is not None and raw.state not in ("Z", "X")
            stopped = bool(raw is not None and raw.state in ("T", "t"))
        else:
            stopped = any(table[p].state in ("T", "t") for p in matched if p in table)
            if stopped:
                expected = next(p for p in matched if p in table and table[p].state in ("T", "t"))
        issues, last_poll = detect.orchestrator_issues(
            loop=loop_arg,
            heartbeat_age=hb_age,
            orchestrator_pids=matched,
            expected_pid=expected,
            expected_alive=alive,
            expected_stopped=stopped,
            config=self.config,
            now=now,
        )
        self.fixer.note_orchestrator(expected if alive else None, matched, loop, now)
        return issues, last_poll

    def _heartbeat_age(self, mark: float, value: float, now: float) -> float:
        """Age of the loop's heartbeat ``value`` (written as ``mark``): its wall-clock age
        when first seen, then the monotonic time since. A wall-clock jump moves the
        heartbeat already written and ``now`` apart by an hour: no freeze from that, and
        none hidden for an hour either."""
        mono = time.monotonic()
        seen = self._heartbeat_seen
        if seen is None or seen[0] != mark:
            seen = self._heartbeat_seen = (mark, max(0.0, now - value), mono)
        return seen[1] + (mono - seen[2])

    def _zombie_children_issues(
        self, table: dict[int, procs.RawProc], observations: list[Observation]
    ) -> list[Issue]:
        """Zombies among the orchestrator's children and the agents, once they linger.

        The era-1 orchestrator reaps its dead agents only when it next starts a
        process, so every agent exit leaves a zombie for up to a cycle: normal.
        A zombie is an issue after ``zombie_issue_after`` seconds; the issue carries
        its ``age`` so that a bug is filed only past ``zombie_bug_after``.
        """
        now = timeutil.now()
        agents = {o.raw.key: o for o in observations if o.zombie and o.raw is not None}
        parents = set(self._orchestrator_pids(table))
        found: dict[tuple[int, float], procs.RawProc] = {
            z.key: z
            for z in procs.find_zombies(table, parents=parents)
            if z.ppid != os.getpid()  # ours (an exited runner): reaped every cycle
        }
        for key, seen in agents.items():
            if seen.raw is not None and seen.raw.ppid != os.getpid():
                found[key] = seen.raw
        since_map = {k: self._zombie_since.get(k, now) for k in found}
        self._zombie_since = since_map
        issues = []
        for key, z in sorted(found.items()):
            age = now - since_map[key]
            if age < self.config.zombie_issue_after:
                continue
            agent = agents.get(key)
            rec = agent.record if agent is not None else None
            what = f"agent {rec.agent_type} pid {z.pid}" if rec else f"zombie process {z.pid}"
            issues.append(
                Issue(
                    type="zombie",
                    severity="degraded",
                    error=f"{what} is a zombie for {int(age)} s "
                    f"(parent {z.ppid} has not reaped it)",
                    agent_pid=z.pid,
                    agent_type=rec.agent_type if rec else None,
                    task_id=rec.task_id if rec else None,
                    agent_key=rec.key if rec else None,
                    details={"kind": "process", "ppid": z.ppid, "own_child": False, "age": age},
                )
            )
        return issues

    def _team_status_issues(self, now: float, *, record: bool) -> list[Issue]:
        """The team daemon's heartbeat files. Its crashes are recorded once and never
        respawned (that daemon restarts its own agents)."""
        statuses = agent_status.read_statuses(self.config.path(agent_status.STATUS_DIR))
        found = agent_status.status_issues(statuses, now)
        if not record or self.read_only:
            return found
        crashed = {s.key: s for s in statuses if s.crashed}
        for issue in found:
            st = crashed.get(issue.agent_key or "")
            if issue.type != "agent_crash" or st is None:
                continue
            try:
                crash_id, created = self.store.record_crash(
                    agent_key=st.key,
                    agent_pid=st.pid or 0,
                    agent_type=st.agent_type,
                    task_id=st.current_task,
                    crashed_at=st.last_heartbeat or now,
                    exit_code=None,
                    info=agent_status.crash_info(st),
                    log_file=None,
                    command_text=None,
                    cwd=None,
                    source=agent_status.SOURCE,
                    action_taken=issue.action_taken,
                    fix_state="skipped",
                )
            except StoreError as exc:
                self._write_error = self._write_error or str(exc)
                continue
            if created:
                self.event(
                    "crashed",
                    f"{st.agent_type} crashed (team daemon): {issue.error}"[:500],
                    agent_key=st.key,
                    agent_pid=st.pid,
                    agent_type=st.agent_type,
                    task_id=st.current_task,
                    crash_id=crash_id,
                )
        return found

    def _remember_death(self, obs: Observation) -> None:
        """Keep the exit code read from an agent's zombie: after the reap it is gone."""
        if obs.zombie and obs.exit_code is not None and obs.liveness in ("dead", "ended_ok"):
            rec = obs.record
            self._death_exits.setdefault(
                rec.key, ExitInfo(rec.pid, rec.started_at, obs.died_at, obs.exit_code)
            )

    def _forget_deaths(self, listed: set[str], now: float) -> None:
        """Bounded by the runs listed: only a listed run is observed again (its crash
        was recorded by the check that read its zombie)."""
        self._death_exits = {k: v for k, v in self._death_exits.items() if k in listed}

    def _annotate_crash_issues(self, issues: list[Issue]) -> None:
        if self._store is None:
            return
        for issue in issues:
            if issue.type != "agent_crash" or not issue.agent_key:
                continue
            try:
                row = self._store.crash_by_key(issue.agent_key)
            except StoreError:
                continue
            if row is not None:
                issue.crash_id = row.crash_id
                issue.action_taken = row.action_taken
                issue.bug_reported = row.bug_reported
                issue.bug_number = row.bug_number

    # ------------------------------------------------------------ seed API
    def check_health(self) -> dict[str, Any]:
        """One check; the seed's result dict."""
        return self.check().to_dict()

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
                is_alive=_process_alive,
            )
        except StoreError as exc:
            log.warning("fixer lease unavailable: %s", exc)
            self._is_fixer = False
        return self._is_fixer

    def auto_fix_issues(self, report: HealthReport | None = None) -> list[ActionResult]:
        """Level 1 and 3 fixes for what the last check found. Idempotent."""
        with self._lock:
            if report is None:
                report = self._last_report or self.check()
            if not self.is_fixer():
                return []
            results = self.fixer.run(report)
            self._adopt_respawns(results)
            self._emit_new_events()
            return results

    def report_bugs_if_any(self, report: HealthReport | None = None) -> list[int]:
        """File or update bugs for persistent failures. Returns the bug numbers touched."""
        with self._lock:
            if report is None:
                report = self._last_report or self.check()
            if not self.is_fixer():
                return []
            numbers = self.reporter.run(report)
            self._emit_new_events()
            return numbers

    # ------------------------------------------------------------ background mode
    def start(self) -> None:
        """Run checks, fixes and event-driven crash detection in background threads."""
        with self._lock:
            if self._thread is not None:
                return
            self._stop.clear()
            if self.config.event_detection:
                self._watcher = PidWatcher()
            self._thread = threading.Thread(target=self._loop, name="ohm-engine", daemon=True)
            self._thread.start()
            if self.auto_fix:
                procs.prewarm()  # a spare runner waits, so the first respawn skips start-up

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        t = self._thread
        if t is not None:
            t.join(timeout)
        self._thread = None
        if self._watcher is not None:
            self._watcher.close()
            self._watcher = None
        if self._store is not None and self._is_fixer:
            with contextlib.suppress(StoreError):
                self._store.release_lease(FIXER_LEASE, self._holder)
            self._is_fixer = False

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def wake(self) -> None:
        """Ask the background loop for a full check soon. However many ask, and however
        often (a crash storm asks dozens of times a second), it runs at most one
        event-driven check every ``EVENT_CHECK_GAP`` seconds."""
        self._check_wanted = True
        self._wake.set()

    def _event_check_in(self) -> float:
        """Seconds until an event-driven check may run (0: now)."""
        elapsed = timeutil.now() - self._last_check_at
        if elapsed < 0:  # the clock went back: do not wait for it to catch up
            return 0.0
        return max(0.0, EVENT_CHECK_GAP - elapsed)

    def _loop(self) -> None:
        """Scheduled checks every ``health_check_interval``; between them, deaths and
        due respawns take their fast paths, and wake-ups coalesce into one check."""
        last_prune = 0.0
        first = True
        next_scheduled = time.monotonic()
        while not self._stop.is_set():
            self._wake.clear()
            if self.fixer.restart_pending:
                self._check_wanted = True  # a restart is verified by checks
            try:
                if time.monotonic() >= next_scheduled or (
                    self._check_wanted and self._event_check_in() == 0.0
                ):
                    self._check_wanted = False
                    next_scheduled = time.monotonic() + self.config.health_check_interval
                    self._cycle(first)
                    first = False
                    if timeutil.now() - last_prune > 3600 and self._is_fixer:
                        last_prune = timeutil.now()
                        self.store.prune(older_than=last_prune - self.config.retention_days * 86400)
                else:
                    due = self.fixer.respawn_due_in()
                    if self.auto_fix and due is not None and due <= 0:
                        self._respawn_due()
                procs.reap_children()
            except Exception as exc:  # the engine must outlive any one bad cycle
                log.exception("health cycle failed")
                self.event("engine_error", f"health cycle failed: {exc}"[:500])
            self._wake.wait(self._sleep_for(next_scheduled))

    def _sleep_for(self, next_scheduled: float) -> float:
        """Until the next scheduled check, allowed event-driven check or due respawn."""
        wait = next_scheduled - time.monotonic()
        if self._check_wanted:
            wait = min(wait, self._event_check_in())
        due = self.fixer.respawn_due_in() if self.auto_fix else None
        if due is not None:
            wait = min(wait, max(0.05, due))
        return max(0.0, wait)

    def _cycle(self, first: bool) -> None:
        """One full check, then the fixes and bug reports it calls for."""
        with self._lock:
            last = self._last_report
            if first and last is not None and timeutil.now() - last.checked_at < 1.0:
                # A face's first snapshot checked a moment ago: a second full
                # check now would only compete with its first paint.
                report = last
            else:
                report = self.check()
        if self.auto_fix:
            self.auto_fix_issues(report)
            self.report_bugs_if_any(report)
        self._arm_watches()

    def _respawn_due(self) -> None:
        """Fast path for respawns whose backoff has ended: no full check needed."""
        with self._lock:
            if not self.is_fixer():
                return
            self._adopt_respawns(self.fixer.handle_pending())
            self._emit_new_events()

    def _adopt_respawns(self, results: list[ActionResult]) -> None:
        """Watch the runs ohm just started, so their deaths take the fast path too."""
        for res in results:
            if res.ok and res.action == "respawn" and res.agent_key:
                self._adopt_spawned(res.agent_key)

    def _arm_watches(self) -> None:
        w = self._watcher
        if w is None:
            return
        watching = w.watching()
        for key, obs in list(self._observations.items()):
            if obs.liveness == "alive" and obs.record.pid not in watching and obs.raw is not None:
                rec = obs.record
                if not w.watch(rec.pid, obs.raw.start_time, self._make_death_cb(key)):
                    # It died between the check and now: handle it now, not a cycle later.
                    self.on_death(key, timeutil.now())

    def watching(self) -> set[int]:
        """PIDs whose death is reported the instant it happens (background mode)."""
        w = self._watcher
        return w.watching() if w is not None else set()

    def _make_death_cb(self, key: str) -> Callable[[int, float | None], None]:
        def on_death(pid: int, when: float | None) -> None:
            try:
                self.on_death(key, when or timeutil.now())
            except Exception:
                log.exception("death handler failed for %s", key)

        return on_death

    def on_death(self, key: str, when: float) -> None:
        """Event path: a watched agent died. Record it (and respawn it) right now."""
        with self._lock:
            obs = self._observations.get(key)
            if obs is None:
                return
            rec = self._fresh_record(obs.record)
            ex = None
            if rec.source == "ohm_spawned":
                ex = _wait_exit_file(self.config.exits_dir_path, rec.pid, rec.started_at, 0.05)
            self._dead_since.setdefault(key, when)
            # Not reaped yet (an era-1 agent stays its orchestrator's zombie): its
            # exit status is readable now, and only now.
            raw = procs.read_proc(rec.pid)
            table = {rec.pid: raw} if raw is not None and raw.state == "Z" else {}
            new = detect.observe(
                rec,
                table=table,
                config=self.config,
                now=timeutil.now(),
                seen_before=True,
                exit_info=ex or self._death_exits.get(key),
                dead_since=when,
                watched=True,
            )
            self._remember_death(new)
            self._observations[key] = new
            if not new.is_crash or new.crash is None:
                if new.liveness == "ended_ok" and ex is not None:
                    self._ingest_exits([new], {rec.pid: ex})
                self.wake()  # let the next full check settle it (grace, cleanup)
                return
            if self._from_state_file(rec):
                return
            crash_id = self._record_crash(new, timeutil.now())
            if ex is not None:
                self._ingest_exits([new], {rec.pid: ex})
            if crash_id is not None and self.auto_fix and self.is_fixer():
                self._adopt_respawns(self.fixer.handle_pending(only=crash_id))
            self._emit_new_events()
            self.wake()  # the rest (bugs, status) at the next full check, coalesced

    def _fresh_record(self, rec: AgentRecord) -> AgentRecord:
        """The state file's entry for this run as it is now: the orchestrator may have
        marked it ``killed`` just before it stopped it, after the last check read it."""
        if not self._from_state_file(rec):
            return rec
        json_source = self._sources.json
        if json_source is None:
            return rec
        try:  # parsed again only if it changed since read (a storm of deaths reads it once)
            view = self._last_view = json_source.read_view()
        except statefile.StateFileError:
            return rec
        for fresh in view.agents:
            if fresh.key == rec.key:
                fresh.log_file = fresh.log_file or rec.log_file
                fresh.create_time = fresh.create_time or rec.create_time
                fresh.cwd = fresh.cwd or rec.cwd
                return fresh
        return rec

    def _adopt_spawned(self, agent_key: str) -> bool:
        """Watch an agent ohm just respawned at once, not from the next check on
        (it may crash again before that). False if it is not in ``ohm_agents``."""
        try:
            row = self.store.ohm_agent(agent_key)
        except StoreError:
            return False
        if row is None:
            return False
        self._adopt(_ohm_record(row))
        return True

    def _adopt(self, rec: AgentRecord) -> Observation:
        """Observe and watch an agent ohm has just started."""
        obs = Observation(rec, "alive")
        raw = procs.read_proc(rec.pid)
        obs.raw = raw
        if raw is None:
            obs.liveness = "dead"
        self._observations[rec.key] = obs
        self._alive_keys.add(rec.key)
        watched = False
        if self._watcher is not None and raw is not None:
            watched = self._watcher.watch(rec.pid, raw.start_time, self._make_death_cb(rec.key))
        if not watched and self.running:
            self.wake()  # already gone (or no watcher): the next full check finds it
        return obs

    def add_listener(self, callback: Callable[[Event], None]) -> None:
        """Call ``callback(event)`` (from an engine thread) for every new event."""
        with self._lock:
            if not self._listeners:
                with contextlib.suppress(StoreError):
                    ids = [e.event_id for e in self.store.list_events(limit=1)]
                    self._last_event_id = ids[0] if ids else 0
            self._listeners.append(callback)

    def remove_listener(self, callback: Callable[[Event], None]) -> None:
        with self._lock, contextlib.suppress(ValueError):
            self._listeners.remove(callback)

    # ------------------------------------------------------------ for the faces
    def snapshot(
        self, *, crash_limit: int = 200, bug_limit: int = 200, record: bool = True
    ) -> Snapshot:
        """Everything a face draws, collected in one go (call from a worker thread).
        ``record=False``: a check that only looks, for read commands (see ``check``)."""
        with self._lock:
            report = self._last_report
            if report is None or (not self.running and timeutil.now() - report.checked_at > 1.0):
                report = self.check(record=record)
            errors: list[str] = []
            crashes: list[CrashRow] = []
            bugs: list[BugRow] = []
            events: list[Event] = []
            hist: list[int] = []
            bucket = timeutil.histogram_bucket(None)
            open_bugs = 0
            try:
                store = self.store
                crashes = store.list_crashes(limit=crash_limit)
                bugs = store.list_bugs(status="all", limit=bug_limit)
                events = store.list_events(limit=200)
                # The window fits the history there is (up to six hours), ending now:
                # the last report may be a check interval old.
                at = timeutil.now()
                longest = timeutil.HISTOGRAM_STEPS[-1] * timeutil.HISTOGRAM_BUCKETS
                oldest = store.oldest_crash_since(at - longest)
                bucket = timeutil.histogram_bucket(None if oldest is None else at - oldest)
                hist = store.crash_histogram(
                    since=at - bucket * timeutil.HISTOGRAM_BUCKETS,
                    bucket_seconds=bucket,
                    buckets=timeutil.HISTOGRAM_BUCKETS,
                )
                open_bugs = store.count_open_bugs()
            except StoreError as exc:
                errors.append(str(exc))
            agents = [self._agent_view(o) for o in self._observations.values()]
            agents += self._failed_respawn_views({a.key for a in agents})
            given_up = sum(
                1
                for i in report.issues
                if i.type == IssueType.RESPAWN_FAILED
                or (i.type == "agent_crash" and i.details.get("given_up"))
            )
            shown = {o.record.log_file for o in self._observations.values()}
            self._last_lines = {p: v for p, v in self._last_lines.items() if p in shown}
            agents.sort(key=lambda a: (a.status != "running", a.agent_type, a.pid))
            cost = self.cost.last
            if cost is not None:
                by_task = cost.tasks()
                for agent in agents:
                    spent = by_task.get(agent.task_id or "")
                    if spent is not None:
                        agent.cost_usd = spent.cost_usd
                        agent.input_tokens = spent.input_tokens
                        agent.output_tokens = spent.output_tokens
            if self._store_error:
                errors.append(self._store_error)
            return Snapshot(
                report=report,
                agents=agents,
                crashes=crashes,
                bugs=bugs,
                events=events,
                crash_histogram=hist,
                histogram_bucket_seconds=bucket,
                open_bugs=open_bugs,
                auto_fix=self.auto_fix,
                is_fixer=self._is_fixer,
                read_only=self.read_only,
                errors=errors,
                cost=cost,
                given_up=given_up,
            )

    def _last_log_line(self, path: str) -> str | None:
        """The log's last line, read again only when the file changed: a face asks
        for every agent's every second, and most logs are quiet."""
        try:
            st = os.stat(path)
        except OSError:
            return None
        sig = (st.st_ino, st.st_size, st.st_mtime_ns)
        hit = self._last_lines.get(path)
        if hit is not None and hit[0] == sig:
            return hit[1]
        line = logparse.agent_last_line(logparse.tail_text(path, 4096))
        self._last_lines[path] = (sig, line)
        return line

    def _failed_respawn_views(self, shown: set[str]) -> list[AgentView]:
        """Agents whose respawn could not start, after their entry left the state
        file: still shown (as ``respawn_failed``, with why) until the task runs again."""
        views = []
        for key, row in self._failed_respawns.items():
            crash: CrashRow | None = row.get("crash")
            if key in shown or crash is None:
                continue
            rec = self.fixer.record_from_crash(crash)
            respawns, _given_up, _next = self.fixer.respawn_status(rec)
            views.append(
                AgentView(
                    key=key,
                    pid=crash.agent_pid,
                    agent_type=crash.agent_type,
                    task_id=crash.task_id,
                    status="respawn_failed",
                    source=rec.source,
                    started_at=None,
                    cpu_percent=None,
                    rss_bytes=None,
                    respawns=respawns,
                    max_respawns=self.config.max_respawn_attempts,
                    next_respawn_at=None,
                    last_log_line=self._last_log_line(crash.log_file) if crash.log_file else None,
                    command_text=crash.command_text or "",
                    cwd=crash.cwd,
                    log_file=crash.log_file,
                    exit_code=crash.exit_code,
                    reason=failure_reason(str(row.get("message") or "respawn failed")),
                )
            )
        return views

    def _agent_view(self, obs: Observation) -> AgentView:
        rec = obs.record
        respawns, given_up, next_at = self.fixer.respawn_status(rec)
        reason: str | None = None
        status: AgentStatus
        if obs.liveness == "alive":
            status = "running"
            stuck = rec.session is not None and rec.session.stuck_for is not None
            if stuck or detect.stalled(obs, self.config, timeutil.now()):
                status = "stalled"
        elif obs.liveness == "zombie":
            status = "zombie"
        elif obs.liveness == "not_running" and rec.status == "killed":
            status = "killed"  # stopped on purpose by the orchestrator
        elif obs.liveness in ("ended_ok", "not_running"):
            status = "completed" if (obs.exit_code in (0, None)) else "crashed"
        elif obs.is_crash:
            status = "given_up" if given_up else ("respawning" if next_at else "crashed")
        else:
            status = "stale"
        failed = self._failed_respawns.get(rec.key)
        if failed is not None and obs.liveness != "alive":
            status = "respawn_failed"
            reason = failure_reason(str(failed.get("message") or "respawn failed"))
        elif obs.liveness != "alive" and self._operator_stopped.get(rec.key):
            status, reason = "completed", "stopped by operator"
        last_line = self._last_log_line(rec.log_file) if rec.log_file else None
        return AgentView(
            key=rec.key,
            pid=rec.pid,
            agent_type=rec.agent_type,
            task_id=rec.task_id,
            status=status,
            source=rec.source,
            started_at=obs.raw.start_time if obs.raw else rec.started_at,
            cpu_percent=obs.cpu_percent,
            rss_bytes=obs.raw.rss_bytes if obs.raw and obs.liveness == "alive" else None,
            respawns=respawns,
            max_respawns=self.config.max_respawn_attempts,
            next_respawn_at=next_at,
            last_log_line=last_line,
            command_text=rec.command_text,
            cwd=rec.cwd,
            log_file=rec.log_file,
            exit_code=obs.exit_code,
            reason=reason,
            exit_signal=signal_name(obs.exit_code),
            worktree_path=rec.worktree_path,
            worktree_branch=_opt_text(rec.raw.get("worktree_branch")),
            children=list(rec.session.children) if rec.session else [],
        )

    def crashes(
        self,
        since: float | None = None,
        *,
        agent_type: str | None = None,
        task_id: str | None = None,
        limit: int | None = None,
    ) -> list[CrashRow]:
        return self.store.list_crashes(
            since=since, agent_type=agent_type, task_id=task_id, limit=limit
        )

    def crash(self, crash_id: int) -> CrashRow | None:
        return self.store.get_crash(crash_id)

    def events(self, since: float | None = None, limit: int = 200) -> list[Event]:
        return self.store.list_events(since=since, limit=limit)

    def bugs(self, status: str = "open") -> list[BugRow]:
        return self.store.list_bugs(status=status)

    def bug(self, number: int | str) -> BugRow:
        n = parse_bug_number(number)
        row = self.store.get_bug(n)
        if row is None:
            raise UnknownBugError(f"unknown bug BUG-{n:03d}")
        return row

    def resolve_agent(self, agent: str | int) -> AgentRecord:
        """Find an agent by key, PID or task id (latest run)."""
        with self._lock:
            if not self._observations:
                self.check()
            text = str(agent).strip()
            if text in self._observations:
                return self._observations[text].record
            if text.isdigit():
                pid = int(text)
                for obs in self._observations.values():
                    if obs.record.pid == pid:
                        return obs.record
            matches = [o.record for o in self._observations.values() if o.record.task_id == text]
            if matches:
                return max(matches, key=lambda r: r.started_at or 0.0)
            for crash in self.store.list_crashes(limit=500):
                if text in (crash.agent_key, str(crash.agent_pid), crash.task_id):
                    return self.fixer.record_from_crash(crash)
            raise UnknownAgentError(f"unknown agent {text!r} (give a PID, agent key or task id)")

    def agent_log_tail(self, agent_key: str, max_bytes: int = 65536) -> str:
        rec = self.resolve_agent(agent_key)
        if not rec.log_file:
            return ""
        return logparse.sanitize(logparse.tail_text(rec.log_file, max_bytes))

    # ------------------------------------------------------------ manual actions
    def _require_writable(self, action: str) -> None:
        if self.read_only:
            raise PermissionError(f"{action} refused: ohm is in read-only mode")

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
        self._require_writable("spawn")
        argv = shlex.split(command) if isinstance(command, str) else list(command)
        with self._lock:
            rec = self.fixer.spawn(
                argv,
                agent_type=agent_type,
                task_id=task_id,
                cwd=os.fspath(cwd) if cwd is not None else None,
                env=env,
                respawn_of=None,
            )
            return self._agent_view(self._adopt(rec))

    def describe_respawn(self, agent: str | int) -> str:
        """Exactly what ``respawn`` would do, for confirmation prompts and ``--dry-run``.

        For a live agent that is two steps: stop it, then run the command.
        """
        return self.respawn_plan(agent).text

    def respawn_plan(self, agent: str | int) -> RespawnPlan:
        """``describe_respawn`` with whether it is a restart (the console's dialog says so)."""
        with self._lock:
            rec = self.resolve_agent(agent)
            cwd, why = self.fixer.respawn_cwd(rec)
            running = self.fixer.is_running(rec)
        cmd = shlex.join(rec.command) if rec.command else rec.command_text
        where = f"(in {cwd})" if cwd else f"(cannot run: {why})"
        run = f"{cmd}  {where}"
        if not running:
            return RespawnPlan(False, run)
        grace = self.config.stop_grace_period
        return RespawnPlan(
            True,
            f"{rec.agent_type} PID {rec.pid} is running: it will be stopped first.\n"
            f"1. stop PID {rec.pid}: SIGTERM (its process group too, if it leads one), "
            f"then SIGKILL after {grace:g}s; nothing starts unless it is gone\n"
            f"2. run: {run}",
        )

    def respawn(self, agent: str | int) -> ActionResult:
        """Manual respawn: runs even for a given-up agent, and resets its count.

        A live agent is restarted: stopped first (identity-checked), and the new
        run starts only once the old one is gone. Never two copies.
        """
        self._require_writable("respawn")
        with self._lock:
            rec = self.resolve_agent(agent)
            running = self.fixer.is_running(rec)
            if not running:
                result = self.fixer.manual_respawn(rec)
        if running:
            result = self.fixer.restart(rec)  # outside the lock: the stop waits a grace period
        if result.ok and result.agent_key:
            with self._lock:  # watched (and counted as the task's live run) at once
                self._adopt_spawned(result.agent_key)
        self._emit_new_events()
        self.wake()
        return result

    def stop_agent(self, agent: str | int) -> ActionResult:
        self._require_writable("stop")
        with self._lock:
            rec = self.resolve_agent(agent)
        result = self.fixer.stop(rec)  # outside the lock: it waits for a grace period
        self._emit_new_events()
        self.wake()
        return result

    def plan_zombie_cleanup(self) -> list[str]:
        with self._lock:
            self.check()
            return self.fixer.plan_cleanup(list(self._observations.values()))

    def clean_zombies(self, dry_run: bool = False) -> ActionResult:
        with self._lock:
            self.check()
            if dry_run:
                plan = self.fixer.plan_cleanup(list(self._observations.values()))
                return ActionResult(
                    True,
                    "clean_zombies",
                    f"{count(len(plan), 'item')} would be cleaned",
                    details={"plan": plan},
                )
            self._require_writable("clean zombies")
            result = self.fixer.clean(list(self._observations.values()))
            self._emit_new_events()
            return result

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
        self._require_writable("file bug")
        with self._lock:
            row = self.tracker.file_manual(
                title=title,
                priority=priority,
                description=description,
                assigned_to=assigned_to,
                category=category,
                related=dict(related) if related else None,
            )
            self._emit_new_events()
            return row

    def _bug_op(self, number: int | str, op: Callable[[BugTracker, int], BugRow]) -> BugRow:
        n = parse_bug_number(number)
        with self._lock:
            try:
                row = op(self.tracker, n)
            except KeyError:
                raise UnknownBugError(f"unknown bug BUG-{n:03d}") from None
            self._emit_new_events()
            return row

    def close_bug(self, number: int | str) -> BugRow:
        self._require_writable("close bug")
        return self._bug_op(number, lambda t, n: t.close(n))

    def reopen_bug(self, number: int | str) -> BugRow:
        self._require_writable("reopen bug")
        return self._bug_op(number, lambda t, n: t.reopen(n))

    def set_bug_priority(self, number: int | str, priority: str) -> BugRow:
        self._require_writable("change bug priority")
        return self._bug_op(number, lambda t, n: t.set_priority(n, priority))

    # ------------------------------------------------------------ acknowledgements
    def acknowledge(
        self, issue: str, *, by: str | None = None, for_seconds: float | None = None
    ) -> Ack:
        """Acknowledge a current issue (``issue_id`` such as ``agent_crash:task:spec-20``,
        or a type / task that names one issue): its alerts and colour stop until it
        changes, goes away, or ``for_seconds`` pass. Raises ``UnknownIssueError``."""
        self._require_writable("acknowledge")
        if for_seconds is not None and not for_seconds > 0:
            raise ValueError(f"an acknowledgement lasts more than 0 seconds, not {for_seconds}")
        with self._lock:
            report = self.check()
            try:
                found = acks.resolve(issue, report.issues)
            except KeyError as exc:
                raise UnknownIssueError(exc.args[0]) from None
            first = found[0]
            measure = acks.Measure.of(found)
            now = timeutil.now()
            ack = self.store.add_ack(
                issue_id=first.issue_id or acks.issue_id(first),
                issue_type=str(first.type),
                by=by or _operator(),
                until=None if for_seconds is None else now + for_seconds,
                severity=measure.severity,
                count=measure.count,
                crash_id=measure.crash_id,
                error=first.error,
                now=now,
            )
            until = "until it changes" if ack.until is None else f"for {int(for_seconds or 0)} s"
            self.event(
                EventKind.ACKNOWLEDGED,
                f"{ack.by} acknowledged {ack.issue_id} {until}",
                agent_type=first.agent_type,
                task_id=first.task_id,
                data={"ack_id": ack.ack_id, "issue_id": ack.issue_id, "until": ack.until},
            )
            self.check()  # the status without it, for the faces at once
            return ack

    def unacknowledge(self, issue: str, *, by: str | None = None) -> list[Ack]:
        """Take back the open acks of ``issue`` (an ``issue_id``, a type or task that
        names one, or an ack number). Raises ``UnknownIssueError`` when none is open."""
        self._require_writable("unacknowledge")
        with self._lock:
            ref = issue.strip()
            candidates = [a for a, _ in self.store.open_acks()]
            chosen = [a for a in candidates if ref in (a.issue_id, str(a.ack_id), f"#{a.ack_id}")]
            if not chosen:
                chosen = [
                    a for a in candidates if ref == a.issue_type or a.issue_id.endswith(f":{ref}")
                ]
            if not chosen:
                known = ", ".join(a.issue_id for a in candidates) or "none"
                raise UnknownIssueError(f"no open acknowledgement of {ref!r} (open: {known})")
            who = by or _operator()
            ended = [a for a in chosen if self.store.end_ack(a.ack_id, f"taken back by {who}")]
            for a in ended:
                self.event(
                    EventKind.UNACKNOWLEDGED,
                    f"{who} took back the acknowledgement of {a.issue_id}",
                    data={"ack_id": a.ack_id, "issue_id": a.issue_id},
                )
            self.check()
            return ended

    def list_acks(self, *, include_ended: bool = False, limit: int = 100) -> list[Ack]:
        """Open acknowledgements (expired ones end at the next check), or the history."""
        if include_ended:
            return self.store.list_acks(limit=limit)
        return [a for a, _ in self.store.open_acks()]

    def simulate_crash(
        self, agent_type: str, error: str = "ImportError", task_id: str | None = None
    ) -> AgentView:
        """Start a real agent that really crashes with ``error``, under ohm's care."""
        from ohm_tui.engine.simulate import crash_command

        argv, cwd = crash_command(agent_type, error, self.config.path("ohm/simulate"))
        view = self.spawn_agent(
            argv, agent_type=agent_type, task_id=task_id or f"sim-{agent_type}", cwd=cwd
        )
        self.event(
            "simulated",
            f"simulated {error} crash of {agent_type} as pid {view.pid}",
            agent_key=view.key,
            agent_pid=view.pid,
            agent_type=agent_type,
            task_id=view.task_id,
        )
        return view

    def close(self) -> None:
        self.stop()
        with self._lock:
            if self._store is not None:
                self._store.close()
                self._store = None
            self._sources.close()

    def __enter__(self) -> OrchestratorHealthMonitor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _ohm_record(row: Mapping[str, Any]) -> AgentRecord:
    """An ``ohm_agents`` row as an ``AgentRecord``."""
    argv = row.get("argv") or []
    if isinstance(argv, str):
        try:
            argv = json.loads(argv)
        except ValueError:
            argv = shlex.split(argv)
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


def _process_alive(pid: int, create_time: float) -> bool:
    raw = procs.read_proc(pid)
    return raw is not None and raw.state != "Z" and abs(raw.start_time - create_time) < 1.0


def _read_exit_file(path: Path) -> ExitInfo | None:
    """The runner's exit record as an ``ExitInfo``; ``None`` when partial or foreign."""
    data = procs.read_exit_record(path)
    if data is None:
        return None
    try:
        return ExitInfo(
            pid=int(data["pid"]),
            started_at=timeutil.to_epoch(data.get("started_at")),
            ended_at=timeutil.to_epoch(data.get("ended_at")),
            exit_code=None if data.get("exit_code") is None else int(data["exit_code"]),
            path=path,
        )
    except (ValueError, KeyError, TypeError):
        return None  # e.g. a failed start: {"pid": null, "error": ...}


def _wait_exit_file(
    exits_dir: Path, pid: int, started_at: float | None, timeout: float
) -> ExitInfo | None:
    """The runner writes the exit record a moment after the agent dies: wait briefly."""
    deadline = time.monotonic() + timeout
    prefix = f"{pid}-"
    while True:
        try:
            for entry in os.scandir(exits_dir):
                if entry.name.startswith(prefix) and entry.name.endswith(".json"):
                    info = _read_exit_file(Path(entry.path))
                    if info is not None and (
                        started_at is None
                        or info.started_at is None
                        or abs(info.started_at - started_at) < 5.0
                    ):
                        return info
        except OSError:
            pass
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.0005)


def _operator() -> str:
    """Who is acknowledging, when the caller does not say: the login name."""
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no USER and no passwd entry (containers)
        return f"uid {os.getuid()}"


def default_data_dir() -> Path:
    return Path("data")


__all__ = [
    "OrchestratorHealthMonitor",
    "UnknownAgentError",
    "UnknownBugError",
    "task_key",
]
