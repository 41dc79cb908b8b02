"""Agents blocked on output: asleep in a write to a pipe nobody reads.

The real orchestrator gave its agents stdout/stderr pipes and never read them.
Once an agent has written about 64 KiB it sleeps in the kernel's pipe write
forever: alive, no CPU, and no log that says why. ``/proc/<pid>/wchan`` names
the function (``pipe_write``, ``anon_pipe_write`` on newer kernels); seen there
on consecutive checks, the agent is reported with what to do.
"""

from __future__ import annotations

import os

from ohm_tui.engine.model import Issue, Liveness, Observation
from ohm_tui.engine.system import kernel

CONSECUTIVE_CHECKS = 2  # one sighting may be a reader that is merely slow
IDLE_CPU_PERCENT = 1.0  # a blocked writer burns nothing


def _pipe_fds(pid: int) -> list[str]:
    """Which of stdout/stderr are pipes (what the operator must redirect)."""
    out = []
    for fd, name in ((1, "stdout"), (2, "stderr")):
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}").startswith("pipe:"):
                out.append(name)
        except OSError:
            continue
    return out


class OutputBlockWatch:
    """Counts, per agent run, the consecutive checks that found it blocked on a pipe."""

    def __init__(self) -> None:
        self._streak: dict[str, int] = {}

    def issues(self, observations: list[Observation]) -> list[Issue]:
        streak: dict[str, int] = {}
        found: list[Issue] = []
        for obs in observations:
            raw = obs.raw
            if obs.liveness != Liveness.ALIVE or raw is None or raw.state != "S":
                continue
            if obs.cpu_percent is not None and obs.cpu_percent >= IDLE_CPU_PERCENT:
                continue
            if not kernel.blocked_on_pipe_write(raw.pid):
                continue
            rec = obs.record
            n = streak[rec.key] = self._streak.get(rec.key, 0) + 1
            if n < CONSECUTIVE_CHECKS:
                continue
            pipes = _pipe_fds(raw.pid)
            what = " and ".join(pipes) or "its output"
            found.append(
                Issue(
                    type="blocked_on_output",
                    severity="degraded",
                    error=(
                        f"{rec.agent_type} pid {rec.pid} is blocked on output: {what} is a "
                        "full pipe nobody reads, so it will wait forever. Stop it and "
                        "respawn it with ohm (its output then goes to a log file), or make "
                        "the orchestrator read or redirect its agents' output"
                    ),
                    agent_pid=rec.pid,
                    agent_type=rec.agent_type,
                    task_id=rec.task_id,
                    agent_key=rec.key,
                    details={"wchan": kernel.wchan(raw.pid), "pipes": pipes, "checks": n},
                )
            )
        self._streak = streak  # bounded: only runs blocked at this check
        return found
