"""The check: gather records, observe, find issues, record, roll up (a pipeline of steps)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from ohm_tui.engine import timeutil
from ohm_tui.engine.detect import acks, observe
from ohm_tui.engine.detect import rules as detect
from ohm_tui.engine.fmt import count
from ohm_tui.engine.model import (
    ActionResult,
    AgentRecord,
    CostSummary,
    EventKind,
    ExitInfo,
    HealthReport,
    Issue,
    IssueType,
    Liveness,
    Observation,
    RawProc,
    Status,
)
from ohm_tui.engine.monitor.watch import Watches
from ohm_tui.engine.sources import sessions as session_source
from ohm_tui.engine.store import Store, StoreError
from ohm_tui.engine.system import procs

log = logging.getLogger("ohm.monitor")


@dataclass(slots=True)
class CheckRun:
    """One check in progress: what each step of the pipeline found so far."""

    now: float
    record: bool
    store: Store | None = None  # None: no history this check (storage trouble)
    issues: list[Issue] = field(default_factory=list)
    records: list[AgentRecord] = field(default_factory=list)
    table: dict[int, RawProc] = field(default_factory=dict)
    exits: dict[int, ExitInfo] = field(default_factory=dict)
    seen: set[str] = field(default_factory=set)
    observations: list[Observation] = field(default_factory=list)
    alive_now: list[str] = field(default_factory=list)
    last_poll: float | None = None
    cost: CostSummary | None = None
    crashed_last_hour: int = 0
    rate: float | None = None


# Closed entries older than this are history, not news (and not read at start-up).
CLOSED_LOOKBACK = 3600.0


class Check(Watches):
    """The check: gather records, observe, find issues, record, roll up (a pipeline of steps)."""

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

    def _gather_no_store(self, issues: list[Issue]) -> list[AgentRecord]:
        records = self._sources.gather(timeutil.now(), issues)
        json_source = self._sources.json
        self._last_view = json_source.view if json_source is not None else None
        self._state_ok = self._sources.json_ok
        return records

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
        """The check as a pipeline: each step reads and adds to one ``CheckRun``."""
        with self._lock:
            # A read-only monitor only looks, whoever asks it to record: its store is
            # read-only, and a write tried there is a storage error of its own making.
            run = CheckRun(now=timeutil.now(), record=record and not self.read_only)
            self.loop_state.last_check_at = run.now
            self._open_history(run)
            self._gather_runs(run)
            self._observe_runs(run)
            self._forget_unlisted(run)
            self._record_history(run)
            self._find_issues(run)
            self._history_issues(run)
            report = self._roll_up(run)
            self._record_report(run, report)
            self._publish(run, report)
            return report

    def _open_history(self, run: CheckRun) -> None:
        """The database; without it the check still watches live state."""
        try:
            run.store = self.store
        except StoreError as exc:
            run.issues.append(
                Issue(
                    type="storage_error",
                    severity="degraded",
                    error=f"{exc}; monitoring live state without history",
                )
            )

    def _gather_runs(self, run: CheckRun) -> None:
        """Records from the sources, the process table, exit records, runs seen before."""
        store = run.store
        if store is not None:
            run.records = self._gather(run.issues)
        else:
            run.records = self._gather_no_store(run.issues)
        self.spawner.reap_children()  # our exited runners: bookkeeping, not a fix
        run.table = procs.scan_processes()
        run.exits = self._exit_infos() if store is not None else {}
        if store is not None:
            try:
                unknown = [r.key for r in run.records if r.key not in self._seen_cache]
                run.seen = store.seen(unknown) | self._seen_cache
            except StoreError:
                run.seen = set(self._seen_cache)

    @staticmethod
    def _awaits_exit_record(rec: AgentRecord, ex: ExitInfo | None) -> bool:
        """One of ohm's own runs gone with no exit record yet: its runner writes one
        within milliseconds of the end, so a check that comes in between waits for it
        (one ``heartbeat_interval``, as for any death seen as it happens) instead of
        calling a clean exit a crash (``ProcessGone``)."""
        return rec.source == "ohm_spawned" and ex is None

    def _observe_runs(self, run: CheckRun) -> None:
        for rec in run.records:
            run.observations.append(self._observe_one(run, rec))

    def _observe_one(self, run: CheckRun, rec: AgentRecord) -> Observation:
        """One run: its process, its exit record, its death, what it ran in."""
        now = run.now
        ex = (
            run.exits.get(rec.pid)
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
            obs = observe.observe(
                rec,
                table=run.table,
                config=self.config,
                now=now,
                seen_before=rec.key in run.seen or rec.key in self._alive_keys,
                exit_info=ex or self._death_exits.get(rec.key),
                # Seen alive and watched (background mode): gone with its death event
                # not handled yet, it died just now; the orchestrator's cleanup gets
                # its grace, as on the event path.
                dead_since=self._dead_since.get(
                    rec.key,
                    now
                    if (self._watcher is not None and rec.key in self._alive_keys)
                    or self._awaits_exit_record(rec, ex)
                    else None,
                ),
                watched=rec.key in self._alive_keys,
            )
            if obs.liveness == Liveness.DEAD and self._awaits_exit_record(rec, ex):
                self._dead_since.setdefault(rec.key, now)
            self._remember_death(obs)
        if obs.liveness == Liveness.ALIVE and obs.raw is not None:
            obs.cpu_percent = self._cpu.sample(obs.raw, time.monotonic())
            run.alive_now.append(rec.key)
            self._alive_keys.add(rec.key)
            if rec.create_time is None:
                rec.create_time = obs.raw.start_time
            self._create_times.setdefault(rec.key, obs.raw.start_time)
            if rec.key not in self._proc_cwds and not rec.cwd:
                self._remember_cwd(rec.key, rec.pid)
        elif obs.liveness == Liveness.DEAD and rec.key in self._alive_keys:
            self._dead_since.setdefault(rec.key, now)
            if obs.died_at is None:
                obs.died_at = self._dead_since[rec.key]
        if not self._state_ok and self._from_state_file(rec) and obs.liveness != Liveness.ALIVE:
            # Last good view of a file we cannot read: show, never act.
            obs.is_crash = False
            obs.stale_entry = False
        return obs

    def _forget_unlisted(self, run: CheckRun) -> None:
        """Per-run caches keep only the runs listed now (a daemon must not grow)."""
        listed = {r.key for r in run.records}
        view = self._last_view
        # A run just closed by its orchestrator keeps the exit code its zombie showed:
        # the cleanup books it with none, and its crash is recorded from the closed entry.
        closed = {r.key for r in view.completed} if view is not None else set()
        self._forget_deaths(listed | closed, run.now)
        self._create_times = {k: v for k, v in self._create_times.items() if k in listed}
        self._proc_cwds = {k: v for k, v in self._proc_cwds.items() if k in listed}
        self._operator_stopped = {k: v for k, v in self._operator_stopped.items() if k in listed}
        self._ingested = {k: v for k, v in self._ingested.items() if k in listed}
        self._alive_keys &= listed
        self._seen_cache &= listed
        self._dead_since = {k: v for k, v in self._dead_since.items() if k in listed}
        self._log_offsets = {k: v for k, v in self._log_offsets.items() if k in listed}
        self._log_inodes = {k: v for k, v in self._log_inodes.items() if k in listed}
        self._logs.forget_unlisted(listed)
        self.fixer.forget_unlisted(listed)
        self._cpu.forget_missing({(o.raw.pid, o.raw.start_time) for o in run.observations if o.raw})

    def _record_history(self, run: CheckRun) -> None:
        """Runs seen alive, new crashes, fast exits, consumed exit records."""
        self._write_error = None
        store = run.store
        if store is None or not run.record:
            return
        now = run.now
        try:
            store.mark_seen(run.alive_now, now)
            self._seen_cache.update(run.alive_now)
        except StoreError as exc:
            self._write_error = str(exc)
        self._record_crashes(run.observations, now)
        self._record_crashes(self._closed_crashes(run), now)
        if self._state_ok and self._last_view is not None:
            self.fixer.note_completed(self._last_view.completed, now)
        if self._sources.completed:
            self.fixer.note_completed(self._sources.completed, now)
        self._ingest_exits(run.observations, run.exits)

    def _closed_crashes(self, run: CheckRun) -> list[Observation]:
        """Crashes in runs the orchestrator closed before ohm saw them end (they lived
        between two checks): each closed entry is looked at once, its log read once."""
        view = self._last_view
        if view is None or not self._state_ok:
            return []
        listed = {o.record.key for o in run.observations}
        closed = {r.key: r for r in view.completed}
        self._closed_judged &= closed.keys()
        new = [r for k, r in closed.items() if k not in self._closed_judged and k not in listed]
        self._closed_judged.update(r.key for r in new)
        found = []
        with self._logs.one_pass(r for r in new if not r.log_file):
            for rec in new:
                if not rec.log_file:
                    rec.log_file = self._logs.find(rec)
                known = self._death_exits.get(rec.key)
                if rec.exit_code is None and known is not None:
                    rec.exit_code = known.exit_code  # read from its zombie before the reap
                obs = observe.observe_closed(
                    rec, config=self.config, now=run.now, lookback=CLOSED_LOOKBACK
                )
                if obs is not None:
                    found.append(obs)
        return found

    def _find_issues(self, run: CheckRun) -> None:
        """What the live state shows: agents, logs, zombies, sessions, the loop, cost."""
        issues, observations, now = run.issues, run.observations, run.now
        store_ok = run.store is not None
        issues.extend(detect.agent_issues(observations, self.config, now))
        issues.extend(self._blocked.issues(observations))
        issues.extend(self._team_status_issues(now, record=store_ok and run.record))
        if store_ok:
            issues.extend(self._pending_crash_issues(issues))
        issues.extend(self._error_line_issues(observations))
        self._orch_scan = None  # find_orchestrators once per process table
        issues.extend(self._zombie_children_issues(run.table, observations))
        issues.extend(self._session_issues(run.records, run.table))
        orch_issues, run.last_poll = self._orchestrator_issues(run.table, now)
        issues.extend(orch_issues)
        run.cost = self.cost.summary(now)  # None without claude_invocations.db
        issues.extend(self.cost.issues(now))

    def _history_issues(self, run: CheckRun) -> None:
        """What history shows: the crash rate, flapping, given-up tasks, failed respawns."""
        store, now, issues = run.store, run.now, run.issues
        if store is not None:
            try:
                run.crashed_last_hour = store.count_crashes(now - 3600)
                run.rate = store.recovery_rate(
                    since=now - 86400, stable_after=self.config.respawn_stable_after, now=now
                )
                issues.extend(self.fixer.flapping_issues(now))
                issues[:] = self.fixer.given_up_issues(
                    issues, run.observations, now, write=run.record and not self.read_only
                )
            except StoreError as exc:
                issues.append(Issue(type="storage_error", severity="degraded", error=str(exc)))
            issues.extend(self._respawn_failed_issues(run.observations))
        if run.crashed_last_hour > self.config.crash_storm_threshold:
            issues.append(
                Issue(
                    type=IssueType.CRASH_STORM,
                    severity="critical",
                    error=f"{count(run.crashed_last_hour, 'crash')} in the last hour "
                    f"(threshold {self.config.crash_storm_threshold})",
                    details={"count": run.crashed_last_hour, "last_crash_id": self._newest_crash()},
                )
            )
        if self._write_error is not None:
            issues.append(self._history_issue(self._write_error))

    def _roll_up(self, run: CheckRun) -> HealthReport:
        """Acknowledgements applied, the status rolled up, the report built."""
        issues = run.issues
        cost_metrics = (
            {} if run.cost is None else {"cost_last_hour_usd": run.cost.last_hour.cost_usd}
        )
        self._annotate_crash_issues(issues)
        zombies = sum(
            1 for i in issues if i.type == "zombie" and i.details.get("kind") != "stale_entries"
        )
        issues[:] = acks.merge(issues)  # each issue_id once: every face counts the same
        self._apply_acks(issues, run.now, run.store is not None)
        status: Status = acks.rollup(issues)  # acknowledged issues do not make the status
        active = sum(1 for o in run.observations if o.liveness == Liveness.ALIVE)
        return HealthReport(
            status=status,
            issues=issues,
            active_agents=active,
            crashed_agents_last_hour=run.crashed_last_hour,
            respawn_success_rate=run.rate,
            orchestrator_last_poll=run.last_poll,
            checked_at=run.now,
            sources=self._sources.describe(),
            extra_metrics={
                "zombie_processes": zombies,
                "stale_entries": sum(
                    len(i.details.get("entries", [])) for i in issues if i.type == "zombie"
                ),
                "state_file_ok": self._state_ok,
                **cost_metrics,
            },
        )

    def _record_report(self, run: CheckRun, report: HealthReport) -> None:
        """The check's own ``health_checks`` row; a failed write degrades the status."""
        store = run.store
        if store is None or not run.record:
            return
        try:
            report.check_id = store.record_health_check(
                report,
                zombie_processes=int(report.extra_metrics["zombie_processes"]),
                orchestrator_responsive=None
                if run.last_poll is None
                else run.last_poll <= self.config.orchestrator_freeze_threshold,
                actions=[],
                bugs=[],
                monitor=self.name,
            )
        except StoreError as exc:
            log.warning("could not record health check: %s", exc)
            if not any(i.type == "storage_error" for i in report.issues):
                report.issues.append(self._history_issue(str(exc)))
            if report.status == "healthy":
                report.status = "degraded"

    def _publish(self, run: CheckRun, report: HealthReport) -> None:
        """What the check saw becomes what actions and faces read; events go out."""
        self._observations = {o.record.key: o for o in run.observations}
        self._last_report = report
        if run.record:
            self._note_status(report.status, report.issues)
        self._emit_new_events()

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
        differs from the last one on record, whichever monitor recorded it: the store
        compares and writes in one transaction, so each change is told once."""
        causes = "; ".join(i.error for i in issues if i.severity == "critical" and i.ack is None)[
            :500
        ]
        # The event says what the alert says: a face may print only events.
        message = f"status {status}" + (f": {causes}" if status == "critical" else "")
        changed: bool | None = None
        if not self.read_only:  # a read-only monitor records nothing
            try:
                event = self.store.add_status_change(status, message[:500], quiet="healthy")
                changed = event is not None
            except StoreError as exc:
                log.warning("could not record the status change: %s", exc)
        if changed is None:  # only its own last status to go by: the alert still goes once
            changed = status != self._last_status
        if changed and status == "critical":
            self.notifier.alert("critical", causes)
        self._last_status = status

    def check_health(self) -> dict[str, Any]:
        """One check; the seed's result dict."""
        return self.check().to_dict()

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
