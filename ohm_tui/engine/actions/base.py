"""What every action shares: the engine context, the check's state, the respawn policy,
and the identity checks an action makes before touching a run."""

from __future__ import annotations

import logging
from typing import Any

from ohm_tui.engine.actions.policy import RespawnPolicy
from ohm_tui.engine.config import Config
from ohm_tui.engine.context import CheckState, EngineContext
from ohm_tui.engine.model import (
    AgentRecord,
    CrashRow,
    Event,
    Lifecycle,
    Liveness,
    split_command,
    task_key,
)
from ohm_tui.engine.system import procs

log = logging.getLogger("ohm.fixes")

RESPAWNS_PER_PASS = 8
# Sources a respawn is written back into: agent_state.json and agent_lifecycle.
WRITE_BACK_SOURCES = ("real", "ohm", "lifecycle")
STALE_SOURCES = ("real", "ohm", "lifecycle", "session")  # sources ohm moves stale entries in


class ActionBase:
    """What every action shares: the engine context, the check's state, the respawn policy,"""

    def __init__(self, ctx: EngineContext, state: CheckState) -> None:
        self.ctx = ctx
        self.state = state

    def move(
        self, current: Lifecycle, target: Lifecycle, message: str, **fields: Any
    ) -> Event | None:
        """Move a run's lifecycle (``EngineContext.move``: checked, then its event)."""
        return self.ctx.move(current, target, message, **fields)

    @property
    def cfg(self) -> Config:
        return self.ctx.config

    @property
    def policy(self) -> RespawnPolicy:
        return RespawnPolicy.from_config(self.cfg)

    def is_running(self, rec: AgentRecord) -> bool:
        """Is this very run alive now (PID, start time and command checked)?"""
        raw = procs.read_proc(rec.pid)
        if raw is None or raw.state in "ZXx":
            return False
        return procs.identity_matches(
            rec.pid,
            started_at=rec.started_at,
            create_time=rec.create_time,
            tolerance=self.cfg.pid_start_tolerance,
            command=rec.command or None,
            raw=raw,
        )

    def other_live_run(self, rec: AgentRecord) -> AgentRecord | None:
        """Another live run on the same task (a respawn would make it two copies)."""
        if not rec.task_id:
            return None  # agents without a task may legitimately run side by side
        for obs in list(self.state.observations.values()):
            other = obs.record
            if (
                other.key != rec.key
                and obs.liveness == Liveness.ALIVE
                and task_key(other.agent_type, other.task_id)
                == task_key(rec.agent_type, rec.task_id)
                and self.is_running(other)
            ):
                return other
        return None

    def record_from_crash(self, crash: CrashRow) -> AgentRecord:
        """Rebuild what is needed to run a crashed agent again from its crash row."""
        obs = self.state.observations.get(crash.agent_key)
        if obs is not None:
            return obs.record
        argv = split_command(crash.command_text)
        return AgentRecord(
            key=crash.agent_key,
            pid=crash.agent_pid,
            agent_type=crash.agent_type,
            task_id=crash.task_id,
            source=crash.source
            if crash.source in ("real", "ohm", "ohm_spawned", "lifecycle", "session")
            else "ohm_spawned",  # type: ignore[arg-type]
            command=argv,
            command_text=crash.command_text or "",
            cwd=crash.cwd,
            log_file=crash.log_file,
            started_at=None,
            status=Lifecycle.CRASHED,
            exit_code=crash.exit_code,
        )
