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
import json
import logging
import os
import shlex
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ohm_tui.engine import detect, logparse, procs, statefile, timeutil
from ohm_tui.engine.bugs import BugTracker
from ohm_tui.engine.config import Config, load_config
from ohm_tui.engine.detect import ExitInfo, Observation
from ohm_tui.engine.fixes import Fixer, task_key
from ohm_tui.engine.fmt import count
from ohm_tui.engine.logfind import LogFinder
from ohm_tui.engine.models import (
    STATUS_ORDER,
    ActionResult,
    AgentRecord,
    AgentStatus,
    AgentView,
    BugRow,
    CrashRow,
    Event,
    HealthReport,
    Issue,
    Snapshot,
    Status,
    parse_bug_number,
)
from ohm_tui.engine.notify import Notifier
from ohm_tui.engine.pidwatch import PidWatcher
from ohm_tui.engine.reporting import BugReporter
from ohm_tui.engine.store import Store, StoreError

log = logging.getLogger("ohm.monitor")

ConfigSource = Config | Mapping[str, Any] | str | os.PathLike[str] | None

FIXER_LEASE = "fixer"
ZOMBIE_GRACE = 2.0  # seconds a process may stay a zombie before it is reported


class UnknownBugError(KeyError):
    """Raised for a bug number the tracker does not hold."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown bug"


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
        self._view_sig: tuple[int, int, int, int] | None = None
        self._state_ok = False
        self._alive_keys: set[str] = set()
        # Exact start time of each run seen alive: a PID reused within
        # ``pid_start_tolerance`` of the file's ``started_at`` is still told apart.
        self._create_times: dict[str, float] = {}
        self._seen_cache: set[str] = set()
        self._dead_since: dict[str, float] = {}
        self._log_offsets: dict[str, int] = {}
        self._log_inodes: dict[str, int | None] = {}
        self._write_error: str | None = None  # first failed history write of this check
        self._logs = LogFinder(self.config)
        self._last_lines: dict[str, tuple[tuple[int, int, int], str | None]] = {}
        self._orch_scan: tuple[dict[int, procs.RawProc], list[int]] | None = None
        self._zombie_since: dict[str, float] = {}
        self._cpu = procs.CpuSampler()
        self._observations: dict[str, Observation] = {}
        self._records_by_pid: dict[int, AgentRecord] = {}
        self._last_report: HealthReport | None = None
        self._last_status: Status | None = None
        self._listeners: list[Callable[[Event], None]] = []
        self._last_event_id = 0
        self._watcher: PidWatcher | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._is_fixer = False
        self.notifier = Notifier(self.config)
        self.fixer = Fixer(self)
        self.reporter = BugReporter(self)

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
        path = self.config.agent_state_path
        try:
            view = self._read_agent_state(path)
            self._last_view = view
            self._state_ok = True
            for w in view.warnings:
                issues.append(
                    Issue(
                        type="state_file_error",
                        severity="degraded",
                        error=f"{path}: {w}",
                        details={"file": str(path), "problem": w},
                    )
                )
        except statefile.StateFileError as exc:
            self._state_ok = False
            kept = " (showing the last good view)" if self._last_view else ""
            issues.append(
                Issue(
                    type="state_file_error",
                    severity="degraded",
                    error=f"{exc}{kept}; no fixes from this file until it is readable",
                    details={"file": str(exc.path), "problem": exc.problem},
                )
            )
        records: list[AgentRecord] = list(self._last_view.agents) if self._last_view else []
        with self._logs.one_pass():
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

    def _read_agent_state(self, path: Path) -> statefile.AgentStateView:
        """The state file, parsed again only when it changed: parsing 1,000 entries
        (a shlex split each) was most of a check's CPU time.

        A file changed within the last second is always re-read: a rewrite in the
        same clock tick can leave size and mtime as they were (git's "racy" case).
        """
        try:
            st = os.stat(path)
            sig: tuple[int, int, int, int] | None = (
                st.st_ino,
                st.st_size,
                st.st_mtime_ns,
                st.st_ctime_ns,
            )
            settled = time.time() - st.st_mtime > 1.0
        except OSError:
            sig, settled = None, False
        if settled and sig == self._view_sig and self._last_view is not None:
            return self._last_view
        self._view_sig = None
        view = statefile.read_agent_state(path)
        self._view_sig = sig
        return view

    def _from_state_file(self, rec: AgentRecord) -> bool:
        return rec.source in ("real", "ohm")

    # ------------------------------------------------------------ the check
    def check(self) -> HealthReport:
        """One health check. Side effects: its own ``health_checks`` row and new crashes."""
        with self._lock:
            now = timeutil.now()
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
            zombies_now: dict[str, float] = {}
            for rec in records:
                ex = exits.get(rec.pid)
                if (
                    ex is not None
                    and rec.started_at is not None
                    and ex.started_at is not None
                    and abs(ex.started_at - rec.started_at) > self.config.pid_start_tolerance
                ):
                    ex = None  # an exit record of an earlier process with this PID
                if rec.create_time is None and rec.key in self._create_times:
                    rec.create_time = self._create_times[rec.key]
                obs = detect.observe(
                    rec,
                    table=table,
                    config=self.config,
                    now=now,
                    seen_before=rec.key in seen or rec.key in self._alive_keys,
                    exit_info=ex,
                    dead_since=self._dead_since.get(rec.key),
                )
                if obs.liveness == "alive" and obs.raw is not None:
                    obs.cpu_percent = self._cpu.sample(obs.raw, now)
                    alive_now.append(rec.key)
                    self._alive_keys.add(rec.key)
                    if rec.create_time is None:
                        rec.create_time = obs.raw.start_time
                    self._create_times.setdefault(rec.key, obs.raw.start_time)
                elif obs.liveness == "dead" and rec.key in self._alive_keys:
                    self._dead_since.setdefault(rec.key, now)
                    if obs.died_at is None:
                        obs.died_at = self._dead_since[rec.key]
                if obs.liveness == "zombie":
                    # A process is a zombie for a moment between its exit and its
                    # parent's wait(): only one that stays a zombie is news.
                    since = zombies_now[rec.key] = self._zombie_since.get(rec.key, now)
                    if now - since < ZOMBIE_GRACE:
                        obs.liveness = "alive"
                        obs.stale_entry = False
                if not self._state_ok and self._from_state_file(rec) and obs.liveness != "alive":
                    # Last good view of a file we cannot read: show, never act.
                    obs.is_crash = False
                    obs.stale_entry = False
                observations.append(obs)
            self._zombie_since = zombies_now
            listed = {r.key for r in records}
            self._create_times = {k: v for k, v in self._create_times.items() if k in listed}
            self._cpu.forget_missing({(o.raw.pid, o.raw.start_time) for o in observations if o.raw})
            self._write_error = None
            if store_ok:
                try:
                    store.mark_seen(alive_now, now)
                    self._seen_cache.update(alive_now)
                except StoreError as exc:
                    self._write_error = str(exc)
                self._record_crashes(observations, now)
                if self._state_ok and self._last_view is not None:
                    self.fixer.note_completed(self._last_view.completed, now)
                self._ingest_exits(observations, exits)
            issues.extend(detect.agent_issues(observations, self.config, now))
            if store_ok:
                issues.extend(self._pending_crash_issues(issues))
            issues.extend(self._error_line_issues(observations))
            self._orch_scan = None  # find_orchestrators once per process table
            issues.extend(self._zombie_children_issues(table, observations))
            orch_issues, last_poll = self._orchestrator_issues(table, now)
            issues.extend(orch_issues)
            crashed_last_hour = 0
            rate: float | None = None
            if store_ok:
                try:
                    crashed_last_hour = store.count_crashes(now - 3600)
                    rate = store.respawn_success_rate(now - 86400)
                    issues.extend(self.fixer.flapping_issues(now))
                    issues.extend(self.fixer.given_up_issues())
                except StoreError as exc:
                    issues.append(Issue(type="storage_error", severity="degraded", error=str(exc)))
            if crashed_last_hour > self.config.crash_storm_threshold:
                issues.append(
                    Issue(
                        type="crash_storm",
                        severity="critical",
                        error=f"{count(crashed_last_hour, 'crash')} in the last hour "
                        f"(threshold {self.config.crash_storm_threshold})",
                    )
                )
            if self._write_error is not None:
                issues.append(self._history_issue(self._write_error))
            self._annotate_crash_issues(issues)
            status: Status = "healthy"
            for issue in issues:
                if STATUS_ORDER[issue.severity] > STATUS_ORDER[status]:
                    status = issue.severity
            active = sum(1 for o in observations if o.liveness == "alive")
            report = HealthReport(
                status=status,
                issues=issues,
                active_agents=active,
                crashed_agents_last_hour=crashed_last_hour,
                respawn_success_rate=rate,
                orchestrator_last_poll=last_poll,
                checked_at=now,
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
                },
            )
            if store_ok:
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
            if status != self._last_status:
                if self._last_status is not None or status != "healthy":
                    self.event("status_changed", f"status {status}", data={"status": status})
                if status == "critical":
                    self.notifier.alert(
                        "critical",
                        "; ".join(i.error for i in issues if i.severity == "critical")[:500],
                    )
                self._last_status = status
            self._emit_new_events()
            return report

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
        path = self.config.agent_state_path
        try:
            view = statefile.read_agent_state(path)
            self._last_view = view
            self._state_ok = True
        except statefile.StateFileError as exc:
            self._state_ok = False
            issues.append(Issue(type="state_file_error", severity="degraded", error=str(exc)))
        return list(self._last_view.agents) if self._last_view else []

    def _record_crashes(self, observations: list[Observation], now: float) -> None:
        for obs in observations:
            if obs.is_crash and obs.crash is not None:
                self._record_crash(obs, now)

    def _record_crash(self, obs: Observation, now: float) -> int | None:
        rec = obs.record
        info = obs.crash
        assert info is not None
        actionable = obs.recent and bool(rec.command) and not self.read_only
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
                cwd=rec.cwd,
                source=rec.source,
                action_taken=None if actionable else "not respawned: died before ohm was watching",
                fix_state="pending" if actionable else "skipped",
            )
        except StoreError as exc:
            log.warning("could not record crash of %s: %s", rec.key, exc)
            self._write_error = self._write_error or str(exc)
            return None
        if created:
            msg = f"{rec.agent_type} pid {rec.pid} crashed"
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
        if loop.problem == "file is missing" or (loop.mtime is None and loop.last_update is None):
            loop_arg = None if loop.mtime is None else loop
        else:
            loop_arg = loop
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

    def _zombie_children_issues(
        self, table: dict[int, procs.RawProc], observations: list[Observation]
    ) -> list[Issue]:
        """Z-state processes among the orchestrator's children (agents are covered already)."""
        agent_pids = {o.record.pid for o in observations}
        parents = set(self._orchestrator_pids(table))
        parents.add(os.getpid())
        issues = []
        for z in procs.find_zombies(table, parents=parents):
            if z.pid in agent_pids:
                continue
            own = z.ppid == os.getpid()
            if own:
                continue  # ours (an exited runner): reaped every cycle, nothing to report
            issues.append(
                Issue(
                    type="zombie",
                    severity="degraded",
                    error=f"zombie process {z.pid} (parent {z.ppid}"
                    + (", ohm itself: will be reaped)" if own else ")"),
                    agent_pid=z.pid,
                    details={"kind": "process", "ppid": z.ppid, "own_child": own},
                )
            )
        return issues

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
        """Ask the background loop for a check now."""
        self._wake.set()

    def _loop(self) -> None:
        last_prune = 0.0
        first = True
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                with self._lock:
                    last = self._last_report
                    if first and last is not None and timeutil.now() - last.checked_at < 1.0:
                        # A face's first snapshot checked a moment ago: a second full
                        # check now would only compete with its first paint.
                        report = last
                    else:
                        report = self.check()
                first = False
                if self.auto_fix:
                    self.auto_fix_issues(report)
                    self.report_bugs_if_any(report)
                self._arm_watches()
                if timeutil.now() - last_prune > 3600 and self._is_fixer:
                    last_prune = timeutil.now()
                    self.store.prune(older_than=last_prune - self.config.retention_days * 86400)
                procs.reap_children()
            except Exception as exc:  # the engine must outlive any one bad cycle
                log.exception("health cycle failed")
                self.event("engine_error", f"health cycle failed: {exc}"[:500])
            interval = self.config.health_check_interval
            due = self.fixer.next_due_in()
            if due is not None:
                interval = max(0.05, min(interval, due))
            elapsed = time.monotonic() - started
            self._wake.wait(max(0.0, interval - elapsed))
            self._wake.clear()

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
            rec = obs.record
            ex = None
            if rec.source == "ohm_spawned":
                ex = _wait_exit_file(self.config.exits_dir_path, rec.pid, rec.started_at, 0.05)
            self._dead_since.setdefault(key, when)
            new = detect.observe(
                rec,
                table={},
                config=self.config,
                now=timeutil.now(),
                seen_before=True,
                exit_info=ex,
                dead_since=when,
            )
            self._observations[key] = new
            if not new.is_crash or new.crash is None:
                if new.liveness == "ended_ok" and ex is not None:
                    self._ingest_exits([new], {rec.pid: ex})
                self._wake.set()  # let the periodic path settle it (grace, cleanup)
                return
            if not self._state_ok and self._from_state_file(rec):
                return
            crash_id = self._record_crash(new, timeutil.now())
            if ex is not None:
                self._ingest_exits([new], {rec.pid: ex})
            if crash_id is not None and self.auto_fix and self.is_fixer():
                for res in self.fixer.handle_pending(only=crash_id):
                    if res.ok and res.action == "respawn" and res.agent_key:
                        self._adopt_spawned(res.agent_key)
            self._emit_new_events()
            self._wake.set()

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
        if self._watcher is not None and raw is not None:
            self._watcher.watch(rec.pid, raw.start_time, self._make_death_cb(rec.key))
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
    def snapshot(self, *, crash_limit: int = 200, bug_limit: int = 200) -> Snapshot:
        """Everything a face draws, collected in one go (call from a worker thread)."""
        with self._lock:
            report = self._last_report
            if report is None or (not self.running and timeutil.now() - report.checked_at > 1.0):
                report = self.check()
            errors: list[str] = []
            crashes: list[CrashRow] = []
            bugs: list[BugRow] = []
            events: list[Event] = []
            hist: list[int] = []
            bucket = 600
            open_bugs = 0
            try:
                store = self.store
                crashes = store.list_crashes(limit=crash_limit)
                bugs = store.list_bugs(status="all", limit=bug_limit)
                events = store.list_events(limit=200)
                hist = store.crash_histogram(
                    since=report.checked_at - 6 * 3600, bucket_seconds=bucket, buckets=36
                )
                open_bugs = store.count_open_bugs()
            except StoreError as exc:
                errors.append(str(exc))
            agents = [self._agent_view(o) for o in self._observations.values()]
            shown = {o.record.log_file for o in self._observations.values()}
            self._last_lines = {p: v for p, v in self._last_lines.items() if p in shown}
            agents.sort(key=lambda a: (a.status != "running", a.agent_type, a.pid))
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
        line = logparse.last_line(logparse.tail_text(path, 4096))
        self._last_lines[path] = (sig, line)
        return line

    def _agent_view(self, obs: Observation) -> AgentView:
        rec = obs.record
        respawns, given_up, next_at = self.fixer.respawn_status(rec)
        status: AgentStatus
        if obs.liveness == "alive":
            status = "running"
            if detect.stalled(obs, self.config, timeutil.now()):
                status = "stalled"
        elif obs.liveness == "zombie":
            status = "zombie"
        elif obs.liveness in ("ended_ok", "not_running"):
            status = "completed" if (obs.exit_code in (0, None)) else "crashed"
        elif obs.is_crash:
            status = "given_up" if given_up else ("respawning" if next_at else "crashed")
        else:
            status = "stale"
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
        rec = self.resolve_agent(agent)
        cwd = rec.cwd or os.getcwd()
        return f"{shlex.join(rec.command) if rec.command else rec.command_text}  (in {cwd})"

    def respawn(self, agent: str | int) -> ActionResult:
        """Manual respawn: runs even for a given-up agent, and resets its count."""
        self._require_writable("respawn")
        with self._lock:
            rec = self.resolve_agent(agent)
            result = self.fixer.manual_respawn(rec)
            self._emit_new_events()
            self._wake.set()
            return result

    def stop_agent(self, agent: str | int) -> ActionResult:
        self._require_writable("stop")
        with self._lock:
            rec = self.resolve_agent(agent)
        result = self.fixer.stop(rec)  # outside the lock: it waits for a grace period
        self._emit_new_events()
        self._wake.set()
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


def default_data_dir() -> Path:
    return Path("data")


__all__ = [
    "OrchestratorHealthMonitor",
    "UnknownAgentError",
    "UnknownBugError",
    "task_key",
]
