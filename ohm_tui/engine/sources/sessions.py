"""Era 3: agents that are threads of the orchestrator, each running ``claude`` calls.

A session row's ``pid`` is a thread identifier: there is no process to look
at, to signal or to respawn. Its health comes from its rows and its calls:

- a call with status ``error``/``timeout`` is a failure, with its ``error`` text;
- a call still open long past ``claude_timeout`` is stuck;
- a ``running`` row whose task has a newer finished row is stale;
- the orchestrator's ``claude`` child processes are shown under their session.
"""

from __future__ import annotations

import os
import re

from ohm_tui.engine.config import Config
from ohm_tui.engine.model import (
    AgentRecord,
    CrashInfo,
    Issue,
    Liveness,
    Observation,
    RawProc,
    SessionHealth,
)
from ohm_tui.engine.sources import calls as inv
from ohm_tui.engine.sources import claude_errors, logparse, logtail
from ohm_tui.engine.sources import sqlite as db
from ohm_tui.engine.sources.base import Source, SourceKind, SourceRead
from ohm_tui.engine.system import procs

STUCK_FACTOR = 1.5  # open longer than this many claude_timeouts = stuck
MATCH_SLACK = 5.0  # seconds between a row's start and its first call, or a call and its process
NOT_RESPAWNED = "not respawned: a session is a thread of the orchestrator (it restarts its own)"


class InvocationsSource(Source):
    """``claude_invocations`` in ``claude_invocations.db``: calls, failures, cost."""

    kind = SourceKind.CLAUDE_INVOCATIONS
    era = 3

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        self.path = inv.path_in(config.path("."))
        self._reader = inv.CallsReader(self.path)
        self.calls: list[inv.Invocation] = []

    @classmethod
    def detect(cls, config: Config) -> bool:
        return db.has_table(inv.path_in(config.path(".")), inv.TABLE)

    def describe(self) -> str:
        return f"{inv.TABLE} in {self.path.name} (era 3)"

    def read(self, now: float) -> SourceRead:
        out = SourceRead()
        try:
            self.calls = self._reader.recent()
        except inv.InvocationsError as exc:
            out.error = f"{self.path}: {inv.TABLE} unreadable ({exc.problem})"
        return out

    def close(self) -> None:
        self._reader.close()


def _norm(agent_type: str) -> str:
    return agent_type.replace("-", "_").lower()


def _window(rec: AgentRecord) -> tuple[float, float | None]:
    ended = rec.raw.get("ended_at")
    end = ended + MATCH_SLACK if isinstance(ended, float) else None
    return (rec.started_at or 0.0) - MATCH_SLACK, end


def _owner(call: inv.Invocation, candidates: list[AgentRecord]) -> AgentRecord | None:
    """The one session a call belongs to: one that names it (its task in the call's
    session id), else the newest session of that type open when the call began."""
    at = call.invoked_at
    if at is None:
        return None
    open_then = []
    for rec in candidates:
        lo, hi = _window(rec)
        if lo <= at and (hi is None or at <= hi):
            open_then.append(rec)
    named = [r for r in open_then if r.task_id and _names(call.session_id, r.task_id)]
    pool = named or open_then
    return max(pool, key=lambda r: r.started_at or 0.0, default=None)


def _names(session_id: str | None, task_id: str) -> bool:
    """Does a call's session id name this task as a whole word (``spec-2`` is not in
    ``spec-22-1404…``)?"""
    pattern = rf"(?<![\w-]){re.escape(task_id)}(?!\w)"
    return session_id is not None and re.search(pattern, session_id) is not None


def annotate(
    records: list[AgentRecord],
    calls: list[inv.Invocation],
    config: Config,
    now: float,
    finished: list[AgentRecord] | None = None,
) -> None:
    """Give each session record the health of its calls. Calls carry no row id:
    each is given to one session of its agent type (see ``_owner``). Sessions that
    have ended (``finished``) are candidates too, so that their calls are never
    handed to a session that was running beside them (a phantom crash)."""
    by_type: dict[str, list[AgentRecord]] = {}
    health: dict[str, SessionHealth] = {}
    for rec in [*records, *(finished or [])]:
        if rec.source == "session" and rec.key not in health:
            by_type.setdefault(_norm(rec.agent_type), []).append(rec)
            health[rec.key] = SessionHealth()
    if not health:
        return
    for call in calls:
        owner = _owner(call, by_type.get(_norm(call.agent_type), []))
        if owner is None:
            continue
        h = health[owner.key]
        at = call.invoked_at or 0.0
        h.invocations += 1
        if call.completed_at is None and call.status is None:
            if h.open_since is None or at < h.open_since:
                h.open_since = at
        elif call.failed and (h.failure_at is None or at >= h.failure_at):
            h.failure_status = call.status
            h.failure_error = call.error
            h.failure_at = call.completed_at or at
    stuck_after = config.claude_timeout * STUCK_FACTOR
    for rec in records:
        h2 = health.get(rec.key)
        if h2 is None:
            continue
        if h2.open_since is not None and now - h2.open_since > stuck_after:
            h2.stuck_for = now - h2.open_since
        rec.session = h2


def observe(rec: AgentRecord, config: Config, now: float) -> Observation:
    """A session row as an observation. Never looks for a process with its "PID"."""
    health = rec.session or SessionHealth()
    ended = rec.raw.get("ended_at")
    ended_at = ended if isinstance(ended, float) else None
    if rec.status not in ("running", "spawned"):
        if rec.status == "failed" or health.failure_status is not None:
            return _failed(rec, health, ended_at or now, now, config, alive=False)
        return Observation(rec, Liveness.NOT_RUNNING, exit_code=rec.exit_code)
    if rec.raw.get("superseded"):
        return Observation(
            rec,
            Liveness.DEAD,
            stale_entry=True,
            reason=f"stale: a newer row of task {rec.task_id} has finished",
        )
    quiet = now - (rec.started_at or now) > min(60.0, config.claude_timeout)
    if rec.raw.get("closed_as_started") and health.invocations == 0 and quiet:
        return Observation(
            rec,
            Liveness.DEAD,
            stale_entry=True,
            reason=f"stale: task {rec.task_id} was closed as this session started, "
            "and it never called claude (its thread failed at once)",
        )
    if health.failure_status is not None and (
        health.open_since is None or (health.failure_at or 0) >= health.open_since
    ):
        return _failed(rec, health, health.failure_at or now, now, config, alive=True)
    return Observation(rec, Liveness.ALIVE, reason="session running")


def _failed(
    rec: AgentRecord,
    health: SessionHealth,
    when: float,
    now: float,
    config: Config,
    *,
    alive: bool,
) -> Observation:
    text = health.failure_error or str(rec.raw.get("error_message") or "") or rec.output or ""
    info = logparse.parse_crash(text) if text else CrashInfo()
    if not info.error_type:
        info.error_type = {"timeout": "ClaudeTimeout", "error": "ClaudeError"}.get(
            health.failure_status or "", "SessionFailed"
        )
        first = logtail.sanitize(text).strip().splitlines()
        info.error_message = (first[-1] if first else "session failed")[:500]
    if not info.root_cause:
        info.root_cause = claude_errors.root_cause(health.failure_status, text)
    info.fingerprint = info.fingerprint or logparse.fingerprint(
        info.error_type, [], f"{rec.agent_type}:{info.error_message}"
    )
    reason = f"claude call {health.failure_status}" if health.failure_status else "row failed"
    return Observation(
        rec,
        Liveness.DEAD,
        died_at=when,
        crash=info,
        is_crash=True,
        recent=False,  # nothing to respawn: never act on a session
        reason=reason + (" (session still running)" if alive else ""),
    )


def issues(records: list[AgentRecord], config: Config) -> list[Issue]:
    """Stuck sessions: a call open long past ``claude_timeout``."""
    out = []
    for rec in records:
        h = rec.session
        if rec.source != "session" or h is None or h.stuck_for is None or h.open_since is None:
            continue
        open_for = int(h.stuck_for)
        out.append(
            Issue(
                type="stalled_agent",
                severity="degraded",
                error=f"session {rec.agent_type} stuck: a claude call open for {open_for} s "
                f"(timeout {int(config.claude_timeout)} s)",
                agent_pid=rec.pid,
                agent_type=rec.agent_type,
                task_id=rec.task_id,
                agent_key=rec.key,
                details={"kind": "session_stuck", "children": list(h.children)},
            )
        )
    return out


def _is_claude(pid: int) -> bool:
    argv = procs.cmdline(pid) or []
    return any(os.path.basename(a) == "claude" for a in argv[:2])


def attach_children(
    records: list[AgentRecord],
    table: dict[int, RawProc],
    orchestrators: list[int],
    calls: list[inv.Invocation],
) -> None:
    """Each ``claude`` child of the orchestrator goes under the running session
    whose open call started closest to it (calls are the only link there is)."""
    sessions = [r for r in records if r.source == "session" and r.session is not None]
    if not sessions or not orchestrators:
        return
    parents = set(orchestrators)
    open_calls = [c for c in calls if c.completed_at is None and c.invoked_at is not None]
    for raw in table.values():
        if raw.ppid not in parents or raw.state in ("Z", "X") or not _is_claude(raw.pid):
            continue
        best = min(
            open_calls,
            key=lambda c: abs((c.invoked_at or 0.0) - raw.start_time),
            default=None,
        )
        if best is None or abs((best.invoked_at or 0.0) - raw.start_time) > MATCH_SLACK:
            continue
        for rec in sessions:
            if _norm(rec.agent_type) == _norm(best.agent_type) and rec.status in (
                "running",
                "spawned",
            ):
                assert rec.session is not None
                rec.session.children.append(raw.pid)
                break
