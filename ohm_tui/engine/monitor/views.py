"""Read models for the faces: the snapshot, agent views, crashes, events, bugs.

``ReadModel`` reads what the check engine saw (under the monitor's lock) and the
database; it never acts. It holds the check engine, never the façade.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterable, Mapping

from ohm_tui.engine import timeutil
from ohm_tui.engine.config import Config
from ohm_tui.engine.detect import rules as detect
from ohm_tui.engine.model import (
    AgentRecord,
    AgentView,
    BugRow,
    CrashRow,
    Event,
    IssueType,
    Lifecycle,
    Liveness,
    Observation,
    RespawnState,
    Snapshot,
    parse_bug_number,
    shown_status,
    signal_name,
    task_key,
)
from ohm_tui.engine.monitor.base import _opt_text, failure_reason
from ohm_tui.engine.monitor.checkengine import CheckEngine
from ohm_tui.engine.monitor.errors import UnknownAgentError, UnknownBugError
from ohm_tui.engine.sources import logtail
from ohm_tui.engine.store import StoreError

log = logging.getLogger("ohm.monitor")

LINE_CACHE_SLACK = 64  # last lines kept beyond the runs observed now (given-up, failed)


class ReadModel:
    """Read models for the faces: the snapshot, agent views, crashes, events, bugs."""

    def __init__(self, check: CheckEngine, lock: threading.RLock, config: Config) -> None:
        self._check = check
        self._lock = lock
        self.config = config
        # Each shown log's last line, by path, with the stat it was read at (pruned to
        # the logs shown by every snapshot).
        self._last_lines: dict[str, tuple[tuple[int, int, int], str | None]] = {}

    def snapshot(
        self, *, crash_limit: int = 200, bug_limit: int = 200, record: bool = True
    ) -> Snapshot:
        """Everything a face draws, collected in one go (call from a worker thread).
        ``record=False``: a check that only looks, for read commands (see ``check``)."""
        with self._lock:
            check = self._check
            report = check.last_report
            if report is None or (not check.running and timeutil.now() - report.checked_at > 1.0):
                report = check.check(record=record)
            errors: list[str] = []
            crashes: list[CrashRow] = []
            bugs: list[BugRow] = []
            events: list[Event] = []
            hist: list[int] = []
            bucket = timeutil.histogram_bucket(None)
            open_bugs = 0
            try:
                store = check.store
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
            owners = phase_owners(check.observations.values())
            states = self._respawn_states(check.observations.values())
            agents = [
                self.agent_view(o, task_phase=o.record.key in owners, states=states)
                for o in check.observations.values()
            ]
            agents += self._failed_respawn_views({a.key for a in agents})
            agents += check.fixer.given_up_views(agents, self._last_log_line)
            given_up = sum(
                1
                for i in report.issues
                if i.type == IssueType.RESPAWN_FAILED
                or (i.type == "agent_crash" and i.details.get("given_up"))
            )
            shown = {o.record.log_file for o in check.observations.values()}
            self._last_lines = {p: v for p, v in self._last_lines.items() if p in shown}
            agents.sort(key=lambda a: (a.status != Lifecycle.RUNNING, a.agent_type, a.pid))
            cost = check.cost.last
            if cost is not None:
                by_task = cost.tasks()
                for agent in agents:
                    spent = by_task.get(agent.task_id or "")
                    if spent is not None:
                        agent.cost_usd = spent.cost_usd
                        agent.input_tokens = spent.input_tokens
                        agent.output_tokens = spent.output_tokens
            if check.store_error and check.store_error not in errors:
                errors.append(check.store_error)
            return Snapshot(
                report=report,
                agents=agents,
                crashes=crashes,
                bugs=bugs,
                events=events,
                crash_histogram=hist,
                histogram_bucket_seconds=bucket,
                open_bugs=open_bugs,
                auto_fix=check.auto_fix,
                is_fixer=check.holds_fixer_lease,
                read_only=check.read_only,
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
        line = logtail.agent_last_line(logtail.tail_text(path, 4096))
        if len(self._last_lines) >= len(self._check.observations) + LINE_CACHE_SLACK:
            # Bounded by the runs listed now, also between snapshots (each prunes).
            shown = {o.record.log_file for o in self._check.observations.values()}
            self._last_lines = {p: v for p, v in self._last_lines.items() if p in shown}
        self._last_lines[path] = (sig, line)
        return line

    def _failed_respawn_views(self, shown: set[str]) -> list[AgentView]:
        """Agents whose respawn could not start, after their entry left the state
        file: still shown (as ``respawn_failed``, with why) until the task runs again."""
        views = []
        fixer = self._check.fixer
        for key, row in self._check.failed_respawns.items():
            crash: CrashRow | None = row.get("crash")
            if key in shown or crash is None:
                continue
            rec = fixer.record_from_crash(crash)
            respawns, _given_up, _next = fixer.respawn_status(rec)
            views.append(
                AgentView(
                    key=key,
                    pid=crash.agent_pid,
                    agent_type=crash.agent_type,
                    task_id=crash.task_id,
                    status=Lifecycle.RESPAWN_FAILED,
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

    def _respawn_states(
        self, observations: Iterable[Observation]
    ) -> dict[str, RespawnState] | None:
        """Every listed task's ledger row in a few queries; None (one query each, as
        before) when the store cannot be read."""
        keys = {task_key(o.record.agent_type, o.record.task_id) for o in observations}
        try:
            return self._check.store.respawn_states(keys)
        except StoreError:
            return None

    def agent_view(
        self,
        obs: Observation,
        *,
        task_phase: bool = True,
        states: Mapping[str, RespawnState] | None = None,
    ) -> AgentView:
        """One run as the faces show it: its status (with why), respawns, last log line.
        ``task_phase=False``: an older crashed run of a task that ran again; the task's
        phase (respawning, given up) is its newest run's, this one shows ``crashed``."""
        rec = obs.record
        respawns, given_up, next_at = self._check.fixer.respawn_status(rec, states)
        if not task_phase:
            given_up, next_at = False, None
        reason: str | None = None
        alive = obs.liveness == Liveness.ALIVE
        stuck = rec.session is not None and rec.session.stuck_for is not None
        failed = self._check.failed_respawns.get(rec.key)
        stopped = bool(self._check.operator_stopped(rec.key))
        status = shown_status(
            obs.liveness,
            record_status=rec.status,
            exit_code=obs.exit_code,
            is_crash=obs.is_crash,
            stalled=alive and (stuck or detect.stalled(obs, self.config, timeutil.now())),
            given_up=given_up,
            next_respawn_at=next_at,
            respawn_failed=failed is not None,
            operator_stopped=stopped,
        )
        if failed is not None and not alive:
            reason = failure_reason(str(failed.get("message") or "respawn failed"))
        elif stopped and not alive:
            reason = "stopped by operator"
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
            rss_bytes=obs.raw.rss_bytes if obs.raw and obs.liveness == Liveness.ALIVE else None,
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
        return self._check.store.list_crashes(
            since=since, agent_type=agent_type, task_id=task_id, limit=limit
        )

    def crash(self, crash_id: int) -> CrashRow | None:
        return self._check.store.get_crash(crash_id)

    def events(self, since: float | None = None, limit: int = 200) -> list[Event]:
        return self._check.store.list_events(since=since, limit=limit)

    def bugs(self, status: str = "open") -> list[BugRow]:
        return self._check.store.list_bugs(status=status)

    def bug(self, number: int | str) -> BugRow:
        n = parse_bug_number(number)
        row = self._check.store.get_bug(n)
        if row is None:
            raise UnknownBugError(f"unknown bug BUG-{n:03d}")
        return row

    def resolve_agent(self, agent: str | int) -> AgentRecord:
        """Find an agent by key, PID or task id (latest run)."""
        check = self._check
        with self._lock:
            if not check.observations:
                check.check()
            observations = check.observations  # the check may have swapped it
            text = str(agent).strip()
            if text in observations:
                return observations[text].record
            if text.isdigit():
                pid = int(text)
                for obs in observations.values():
                    if obs.record.pid == pid:
                        return obs.record
            matches = [o.record for o in observations.values() if o.record.task_id == text]
            if matches:
                return max(matches, key=lambda r: r.started_at or 0.0)
            for crash in check.store.list_crashes(limit=500):
                if text in (crash.agent_key, str(crash.agent_pid), crash.task_id):
                    return check.fixer.record_from_crash(crash)
            raise UnknownAgentError(f"unknown agent {text!r} (give a PID, agent key or task id)")

    def agent_log_tail(self, agent_key: str, max_bytes: int = 65536) -> str:
        rec = self.resolve_agent(agent_key)
        if not rec.log_file:
            return ""
        return logtail.sanitize(logtail.tail_text(rec.log_file, max_bytes))


def phase_owners(observations: Iterable[Observation]) -> set[str]:
    """The run that shows each task's phase: its newest crashed run. The state file may
    list every crashed run of a task (era 1 never removed one); the older ones were
    replaced, and show as what they are (``crashed``), not as more rows in the phase."""
    newest: dict[str, Observation] = {}
    for obs in observations:
        if not obs.is_crash or obs.liveness in (Liveness.ALIVE, Liveness.ZOMBIE):
            continue
        tk = task_key(obs.record.agent_type, obs.record.task_id)
        best = newest.get(tk)
        if best is None or _age_key(obs) > _age_key(best):
            newest[tk] = obs
    return {o.record.key for o in newest.values()}


def _age_key(obs: Observation) -> tuple[float, int]:
    return (obs.record.started_at or 0.0, obs.record.pid)
