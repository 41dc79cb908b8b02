"""Detection rules: observations (and the loop state) in, issues out. Pure: nothing here
reads a file or a process, and nothing writes anything.

The real orchestrator's first monitor cleaned state inside its check and then
had nothing left to record. Here a check only *looks*; the actions room acts later
on what a check found.
"""

from __future__ import annotations

from collections import defaultdict

from ohm_tui.engine.config import Config
from ohm_tui.engine.fmt import count
from ohm_tui.engine.model import (
    Issue,
    Liveness,
    Observation,
)
from ohm_tui.engine.sources.statefile import LoopState
from ohm_tui.engine.system import procs


def _start(obs: Observation, default: float) -> float:
    return obs.raw.start_time if obs.raw is not None else default


def stalled(obs: Observation, config: Config, now: float) -> bool:
    """Alive, silent and idle: the agent waiting at a ``[y/N]`` prompt."""
    if obs.liveness != Liveness.ALIVE or obs.raw is None:
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
        if obs.liveness == Liveness.ALIVE:
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
    """Liveness of the loop itself. Returns the issues and the last-poll age.

    A freeze names the heartbeat it was judged by (``heartbeat``, ``heartbeat_path``):
    ``work_loop_state.json`` exists in era 1 only."""
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
    if loop is not None:
        where = {"heartbeat": loop.heartbeat, "heartbeat_path": str(loop.path)}
        for issue in issues:
            if issue.type == "orchestrator_freeze" and issue.details.get("reason") != (
                "heartbeat_stale"  # the heartbeat log: a file of its own
            ):
                issue.details.update(where)
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
