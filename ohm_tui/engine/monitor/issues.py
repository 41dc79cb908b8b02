"""The check's issue steps: one method per kind of issue the monitor itself finds."""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from typing import Any

from ohm_tui.engine import timeutil
from ohm_tui.engine.detect import rules as detect
from ohm_tui.engine.fmt import count
from ohm_tui.engine.model import (
    AgentRecord,
    FixState,
    Issue,
    IssueType,
    Lifecycle,
    Liveness,
    Observation,
    RawProc,
    task_key,
)
from ohm_tui.engine.monitor.base import _task_of, failure_reason
from ohm_tui.engine.monitor.deaths import Deaths
from ohm_tui.engine.sources import agent_status, logparse, logtail, statefile
from ohm_tui.engine.sources import sessions as session_source
from ohm_tui.engine.store import StoreError
from ohm_tui.engine.system import procs

log = logging.getLogger("ohm.monitor")


class IssueSteps(Deaths):
    """The check's issue steps: one method per kind of issue the monitor itself finds."""

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
            if o.liveness == Liveness.ALIVE:
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
            if obs.liveness != Liveness.ALIVE or not rec.log_file:
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
            new_offset, text = logtail.read_new(rec.log_file, offset, budget)
            self._log_offsets[rec.key] = new_offset
            lines = logparse.error_lines(text) if text else []
            if new_offset - offset > budget:  # skipped to the tail: the first new line's start
                head = logtail.line_at(rec.log_file, offset)
                lines = (logparse.error_lines(head) if head else []) + lines
            if lines:
                issues.append(
                    Issue(
                        type="agent_errors",
                        severity="degraded",
                        error=f"{count(len(lines), 'new error line')}: "
                        f"{logtail.sanitize(lines[-1])[:200]}",
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

    def _orchestrator_pids(self, table: dict[int, RawProc]) -> list[int]:
        """``find_orchestrators`` over ``table``, computed once for both of its callers."""
        scan = self._orch_scan
        if scan is not None and scan[0] is table:
            return scan[1]
        found = procs.find_orchestrators(table, self.config.orchestrator_match)
        self._orch_scan = (table, found)
        return found

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

    def _orchestrator_issues(
        self, table: dict[int, RawProc], now: float
    ) -> tuple[list[Issue], float | None]:
        loop = statefile.read_work_loop_state(self.config.work_loop_state_path, now=now)
        table_hb = self._sources.heartbeat  # era 2+: orchestrator_state.updated_at
        if table_hb is not None and (
            loop.last_update is None or (table_hb.last_update or 0.0) > loop.last_update
        ):
            loop = table_hb
        # No loop state to judge: no file (a missing one has no mtime) and no heartbeat.
        absent = loop.mtime is None and (
            loop.problem == "file is missing" or loop.last_update is None
        )
        loop_arg = None if absent else loop
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

    def _zombie_children_issues(
        self, table: dict[int, RawProc], observations: list[Observation]
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
        found: dict[tuple[int, float], RawProc] = {
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
                    fix_state=FixState.SKIPPED,
                )
            except StoreError as exc:
                self._write_error = self._write_error or str(exc)
                continue
            if created:
                self.context.move(
                    Lifecycle.RUNNING,
                    Lifecycle.CRASHED,
                    f"{st.agent_type} crashed (team daemon): {issue.error}"[:500],
                    agent_key=st.key,
                    agent_pid=st.pid,
                    agent_type=st.agent_type,
                    task_id=st.current_task,
                    crash_id=crash_id,
                )
        return found

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

    def _session_issues(self, records: list[AgentRecord], table: dict[int, RawProc]) -> list[Issue]:
        """Era 3: stuck sessions, and each session's claude processes found."""
        if not any(r.source == "session" for r in records):
            return []
        calls = self._sources.invocations
        session_source.attach_children(
            records, table, self._orchestrator_pids(table), calls.calls if calls else []
        )
        return session_source.issues(records, self.config)

    @staticmethod
    def _history_issue(error: str) -> Issue:
        """A write to the database failed (disk full, read-only): say so, keep watching."""
        return Issue(
            type="storage_error",
            severity="degraded",
            error=f"{error}; history is not being recorded (live monitoring goes on, "
            "and what happens meanwhile is recorded once writing works again)",
        )
