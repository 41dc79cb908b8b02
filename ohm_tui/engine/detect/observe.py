"""Observing: one agent record plus the process table, its exit record and its log
tail make one ``Observation``. Reads /proc and logs; writes nothing."""

from __future__ import annotations

import os

from ohm_tui.engine import timeutil
from ohm_tui.engine.config import Config
from ohm_tui.engine.model import (
    AgentRecord,
    CrashInfo,
    ExitInfo,
    Liveness,
    Observation,
    RawProc,
)
from ohm_tui.engine.sources import logparse, logtail
from ohm_tui.engine.system import kernel, procs


def log_mtime(path: str | None) -> float | None:
    if not path:
        return None
    try:
        return os.stat(path).st_mtime  # not pathlib: called for every agent on every check
    except OSError:
        return None


def observe(
    record: AgentRecord,
    *,
    table: dict[int, RawProc],
    config: Config,
    now: float,
    seen_before: bool,
    exit_info: ExitInfo | None,
    dead_since: float | None,
    watched: bool = False,
) -> Observation:
    """Classify one agent run: alive, a crash, a clean end, or a stale entry.

    A crash needs evidence (a non-zero exit code, a traceback in its log, or a
    process ohm saw alive that vanished while its entry still says running), so
    that a file full of long-dead entries is cleaned, never mass-respawned.

    An entry of ``active_agents`` whose process is gone is stale whatever its
    status: the orchestrator's cleanup may never run. One it marked ``killed``
    (``exit_code: -9``) was stopped on purpose: never a crash.

    ``watched``: this monitor saw the run alive, so a death found now happened now.
    """
    listed_running = record.status in ("running", "spawned", "starting")
    # Only a state file can hold a stale entry; ohm's own records close themselves.
    in_file = record.source != "ohm_spawned"
    raw = table.get(record.pid)
    alive = raw is not None and procs.identity_matches(
        record.pid,
        started_at=record.started_at,
        create_time=record.create_time,
        tolerance=config.pid_start_tolerance,
        command=record.command or None,
        raw=raw,
    )
    mtime = log_mtime(record.log_file)
    if alive and raw is not None and raw.state != "Z":
        return Observation(record, Liveness.ALIVE, raw=raw, log_mtime=mtime)
    zombie = raw if alive and raw is not None else None
    if zombie is not None and exit_info is None and listed_running:
        # A zombie is dead. Its exit status is still in /proc until its parent reaps
        # it: the only exit code an era-1 agent ever has. Classify it now.
        code = kernel.zombie_exit_code(record.pid, zombie.start_time)
        if code is not None:
            # Unwatched: the death time is unknown, but not before its start, so a
            # long-dead zombie is dated by its start and is never "recent".
            when = dead_since if dead_since is not None else (now if watched else None)
            exit_info = ExitInfo(record.pid, record.started_at, when, code)
    obs = _observe_dead(
        record,
        config=config,
        now=now,
        seen_before=seen_before,
        exit_info=exit_info,
        dead_since=dead_since,
        listed_running=listed_running,
        in_file=in_file,
        mtime=mtime,
        foreign=raw is not None and not alive,
    )
    if zombie is not None:
        obs.raw, obs.zombie = zombie, True
        if not obs.reason or obs.liveness == Liveness.NOT_RUNNING:
            obs.reason = "process is a zombie (exited, not reaped by its parent)"
    return obs


def _observe_dead(
    record: AgentRecord,
    *,
    config: Config,
    now: float,
    seen_before: bool,
    exit_info: ExitInfo | None,
    dead_since: float | None,
    listed_running: bool,
    in_file: bool,
    mtime: float | None,
    foreign: bool,
) -> Observation:
    """A run whose process is no longer running: a crash, a clean end, or history."""
    stopped_on_purpose = record.status == "killed"  # by the orchestrator: never a crash
    exit_code = record.exit_code
    died_at: float | None = None
    if exit_info is not None:
        exit_code = exit_info.exit_code if exit_info.exit_code is not None else exit_code
        died_at = exit_info.ended_at
    if stopped_on_purpose or (not listed_running and exit_info is None):
        # The source itself says it ended (completed / killed / failed): history, not
        # news. Still listed among the active agents, it is a stale entry.
        return Observation(
            record,
            Liveness.NOT_RUNNING,
            exit_code=exit_code,
            died_at=died_at,
            log_mtime=mtime,
            stale_entry=in_file,
            reason=f"process gone; its entry already says {record.status}",
        )

    tail = logtail.tail_text(record.log_file, config.log_tail_bytes) if record.log_file else ""
    tail = tail or record.output or ""  # a source that keeps the run's output (agent_lifecycle)
    info = logparse.parse_crash(tail) if tail else CrashInfo()
    has_tb = bool(tail) and logparse.has_traceback(tail)
    if died_at is None:
        died_at = dead_since if dead_since is not None else (mtime or record.started_at or now)
    recent = (now - died_at) <= config.crash_recent_window

    if exit_code == 0 and not has_tb:
        return Observation(
            record,
            Liveness.ENDED_OK,
            exit_code=0,
            died_at=died_at,
            log_mtime=mtime,
            stale_entry=in_file,
            reason="exited 0",
        )

    reason = ""
    is_crash = False
    if exit_code is not None and exit_code != 0:
        is_crash, reason = True, f"exited with code {exit_code}"
    elif has_tb:
        is_crash, reason = True, "traceback in log"
    elif record.status == "failed" and exit_info is not None:
        is_crash, reason = True, "its source marked it failed"
    elif seen_before and (dead_since is None or now - dead_since >= config.heartbeat_interval):
        # Gone while its entry still says running, past the orchestrator's own
        # bookkeeping delay (one loop cycle).
        is_crash, reason = True, "process gone while its entry says running"
    if foreign:
        reason = (reason + "; " if reason else "") + "PID now belongs to another process"
    if is_crash:
        _name_crash(info, record, exit_code, reason)
    return Observation(
        record,
        Liveness.DEAD,
        exit_code=exit_code,
        died_at=died_at,
        crash=info if is_crash else None,
        is_crash=is_crash,
        recent=recent,
        stale_entry=in_file,
        log_mtime=mtime,
        reason=reason or "process gone (no exit code, no traceback)",
    )


def _name_crash(info: CrashInfo, record: AgentRecord, exit_code: int | None, reason: str) -> None:
    """A crash without a parsed error still gets a type, a message and a fingerprint."""
    if info.error_type:
        return
    info.error_type = "ExitCode" if exit_code not in (None, 0) else "ProcessGone"
    info.error_message = info.error_message or reason
    info.fingerprint = info.fingerprint or logparse.fingerprint(
        info.error_type, [], f"{record.agent_type}:{record.task_id}"
    )


def observe_closed(
    record: AgentRecord, *, config: Config, now: float, lookback: float
) -> Observation | None:
    """A run its orchestrator had already closed (moved to ``completed_agents``) when
    ohm first read it: it started and ended between two checks, or while ohm was not
    running. The real cleanup books every end as ``completed`` with no exit code, so
    a crash there is hidden unless its exit code or its log says otherwise: a crash
    only with that evidence, never "recent" (the orchestrator is done with it: shown
    and counted, not respawned). None for a clean end, a kill, or old history."""
    if record.status == "killed" or record.exit_code == -9:
        return None
    ended = timeutil.to_epoch(record.raw.get("completed_at"))
    if ended is None or now - ended > lookback:
        return None
    tail = logtail.tail_text(record.log_file, config.log_tail_bytes) if record.log_file else ""
    tail = tail or record.output or ""
    code = record.exit_code
    has_tb = bool(tail) and logparse.has_traceback(tail)
    if code in (None, 0) and not has_tb:
        return None
    info = logparse.parse_crash(tail) if tail else CrashInfo()
    reason = f"exited with code {code}" if code not in (None, 0) else "traceback in log"
    _name_crash(info, record, code, reason)
    return Observation(
        record,
        Liveness.DEAD,
        exit_code=code,
        died_at=ended,
        crash=info,
        is_crash=True,
        recent=False,
        reason=f"{reason}; closed as {record.status} before ohm saw it end",
    )
