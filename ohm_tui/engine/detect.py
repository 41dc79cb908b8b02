"""Detection: turn what the sources say and what the process table shows into
observations and issues. Nothing here writes anything.

The real orchestrator's first monitor cleaned state inside its check and then
had nothing left to record. Here a check only *looks*; ``fixes.py`` acts later
on what a check found.
"""

from __future__ import annotations

import os
from collections import defaultdict

from ohm_tui.engine import logparse
from ohm_tui.engine.config import Config
from ohm_tui.engine.fmt import count
from ohm_tui.engine.model import (
    AgentRecord,
    CrashInfo,
    ExitInfo,
    Issue,
    Observation,
    RawProc,
)
from ohm_tui.engine.statefile import LoopState
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
        return Observation(record, "alive", raw=raw, log_mtime=mtime)
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
        if not obs.reason or obs.liveness == "not_running":
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
            "not_running",
            exit_code=exit_code,
            died_at=died_at,
            log_mtime=mtime,
            stale_entry=in_file,
            reason=f"process gone; its entry already says {record.status}",
        )

    tail = logparse.tail_text(record.log_file, config.log_tail_bytes) if record.log_file else ""
    tail = tail or record.output or ""  # a source that keeps the run's output (agent_lifecycle)
    info = logparse.parse_crash(tail) if tail else CrashInfo()
    has_tb = bool(tail) and logparse.has_traceback(tail)
    if died_at is None:
        died_at = dead_since if dead_since is not None else (mtime or record.started_at or now)
    recent = (now - died_at) <= config.crash_recent_window

    if exit_code == 0 and not has_tb:
        return Observation(
            record,
            "ended_ok",
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
    if is_crash and not info.error_type:
        info.error_type = "ExitCode" if exit_code not in (None, 0) else "ProcessGone"
        info.error_message = info.error_message or reason
        info.fingerprint = info.fingerprint or logparse.fingerprint(
            info.error_type, [], f"{record.agent_type}:{record.task_id}"
        )
    return Observation(
        record,
        "dead",
        exit_code=exit_code,
        died_at=died_at,
        crash=info if is_crash else None,
        is_crash=is_crash,
        recent=recent,
        stale_entry=in_file,
        log_mtime=mtime,
        reason=reason or "process gone (no exit code, no traceback)",
    )


def _start(obs: Observation, default: float) -> float:
    return obs.raw.start_time if obs.raw is not None else default


def stalled(obs: Observation, config: Config, now: float) -> bool:
    """Alive, silent and idle: the agent waiting at a ``[y/N]`` prompt."""
    if obs.liveness != "alive" or obs.raw is None:
        return False
    if now - obs.raw.start_time < config.stalled_after:
        return False
    last_output = obs.log_mtime if obs.log_mtime is not None else obs.raw.start_time
    if now - last_output < config.stalled_after:
        return False
    cpu = obs.cpu_percent
    if cpu is None:
        # First sight (a one-shot `ohm check` or `ohm agents`): the average since start,
        # as `ps` shows it, so the CLI and the long-running console say the same thing.
        cpu = obs.raw.cpu_ticks / procs.CLK_TCK / max(1.0, now - obs.raw.start_time) * 100.0
    return cpu < config.stalled_cpu_percent


def agent_issues(observations: list[Observation], config: Config, now: float) -> list[Issue]:
    """Issues about agents: crashes, stale entries, duplicates, stalls (lingering
    zombies are the monitor's: they need to be timed across checks)."""
    issues: list[Issue] = []
    stale: list[Observation] = []
    by_task: dict[str, list[Observation]] = defaultdict(list)
    for obs in observations:
        r = obs.record
        if obs.is_crash and obs.crash is not None:
            msg = obs.crash.error_type or "crash"
            if obs.crash.error_message:
                msg = f"{msg}: {obs.crash.error_message}"
            issues.append(
                Issue(
                    type="agent_crash",
                    severity="degraded",
                    error=msg,
                    agent_pid=r.pid,
                    agent_type=r.agent_type,
                    task_id=r.task_id,
                    agent_key=r.key,
                    details={"reason": obs.reason, "exit_code": obs.exit_code},
                )
            )
        if obs.stale_entry and not obs.zombie and not obs.is_crash:
            # Crashes are shown as crashes; a zombie waits for its parent's next cycle
            # (lingering ones are reported by the monitor); cleanup still tidies both.
            stale.append(obs)
        if obs.liveness == "alive":
            if r.task_id:
                by_task[r.task_id].append(obs)
            if stalled(obs, config, now):
                issues.append(
                    Issue(
                        type="stalled_agent",
                        severity="degraded",
                        error=(
                            f"{r.agent_type} pid {r.pid} alive but silent and idle for "
                            f"{int(now - (obs.log_mtime or _start(obs, now)))} s"
                            " (waiting at a prompt?)"
                        ),
                        agent_pid=r.pid,
                        agent_type=r.agent_type,
                        task_id=r.task_id,
                        agent_key=r.key,
                    )
                )
    if stale:
        issues.append(
            Issue(
                type="zombie",
                severity="degraded",
                error=f"{count(len(stale), 'stale entry')} listed as active whose process is gone",
                details={
                    "kind": "stale_entries",
                    "entries": [
                        {
                            "pid": o.record.pid,
                            "agent_type": o.record.agent_type,
                            "task_id": o.record.task_id,
                            "key": o.record.key,
                            "source": o.record.source,
                            "reason": o.reason,
                        }
                        for o in stale
                    ],
                },
            )
        )
    for task_id, group in sorted(by_task.items()):
        if len(group) > 1:
            issues.append(
                Issue(
                    type="duplicate_agents",
                    severity="degraded",
                    error=f"{len(group)} live agents on task {task_id}",
                    agent_type=group[0].record.agent_type,
                    task_id=task_id,
                    details={"pids": [o.record.pid for o in group]},
                )
            )
    return issues


def orchestrator_issues(
    *,
    loop: LoopState | None,
    heartbeat_age: float | None,
    orchestrator_pids: list[int],
    expected_pid: int | None,
    expected_alive: bool | None,
    expected_stopped: bool,
    config: Config,
    now: float,
) -> tuple[list[Issue], float | None]:
    """Liveness of the loop itself. Returns the issues and the last-poll age."""
    issues: list[Issue] = []
    last_poll_age: float | None = None
    if loop is not None and loop.last_update is not None:
        last_poll_age = max(0.0, now - loop.last_update)
    if loop is not None and loop.problem and loop.last_update is None:
        issues.append(
            Issue(
                type="state_file_error",
                severity="degraded",
                error=f"{loop.path}: {loop.problem}",
                details={"file": str(loop.path)},
            )
        )
    if last_poll_age is not None and last_poll_age > config.orchestrator_freeze_threshold:
        issues.append(
            Issue(
                type="orchestrator_freeze",
                severity="critical",
                error=(
                    f"orchestrator loop frozen: last poll {int(last_poll_age)} s ago "
                    f"(threshold {int(config.orchestrator_freeze_threshold)} s)"
                ),
                details={"reason": "loop_stale", "last_poll_age": last_poll_age},
            )
        )
    if heartbeat_age is not None and heartbeat_age > 2 * config.heartbeat_interval:
        issues.append(
            Issue(
                type="orchestrator_freeze",
                severity="degraded",
                error=f"heartbeat log silent for {int(heartbeat_age)} s "
                f"(expected a line every {int(config.heartbeat_interval)} s)",
                details={"reason": "heartbeat_stale", "heartbeat_age": heartbeat_age},
            )
        )
    if expected_pid is not None and expected_alive is False:
        issues.append(
            Issue(
                type="orchestrator_freeze",
                severity="critical",
                error=f"orchestrator process {expected_pid} is gone",
                details={"reason": "process_gone", "pid": expected_pid},
            )
        )
    elif expected_stopped:
        issues.append(
            Issue(
                type="orchestrator_freeze",
                severity="critical",
                error=f"orchestrator process {expected_pid} is stopped (SIGSTOP?)",
                details={"reason": "process_stopped", "pid": expected_pid},
            )
        )
    if len(orchestrator_pids) > 1:
        issues.append(
            Issue(
                type="multiple_orchestrators",
                severity="degraded",
                error=f"{len(orchestrator_pids)} orchestrator instances running: "
                + ", ".join(str(p) for p in orchestrator_pids),
                details={"pids": orchestrator_pids},
            )
        )
    return issues, last_poll_age
