"""Telling the orchestrator: a respawned run's new PID goes back into its source."""

from __future__ import annotations

import dataclasses
import logging
import shlex
from typing import Any

from ohm_tui.engine import timeutil
from ohm_tui.engine.actions.base import (
    ActionBase,
)
from ohm_tui.engine.model import (
    AgentRecord,
)
from ohm_tui.engine.sources import statefile, statewrite
from ohm_tui.engine.sources.base import SourceWriteError
from ohm_tui.engine.store import StoreError
from ohm_tui.engine.system import exits

# Seconds a write-back waits for the exit record of a run ohm started (the runner
# writes it a moment after the death).
EXIT_RECORD_WAIT = 0.5

log = logging.getLogger("ohm.fixes")


class WriteBack(ActionBase):
    """Telling the orchestrator: a respawned run's new PID goes back into its source."""

    def write_back(self, old: AgentRecord, new: AgentRecord, *, restarted: bool = False) -> None:
        """Tell the orchestrator: the new PID runs this task now, the old one ended.

        A restarted run was stopped on purpose: it is booked ``killed``, as the
        orchestrator books its own kills, never as a crash.
        """
        if old.source not in ("real", "ohm"):
            try:
                if old.exit_code is None:  # the row had none: the crash row may have it
                    crash = self.ctx.store.crash_by_key(old.key)
                    if crash is not None and crash.exit_code is not None:
                        old = dataclasses.replace(old, exit_code=crash.exit_code)
                if old.exit_code is None and old.raw.get("respawned_by") == "ohm":
                    # A run ohm started: its runner writes the exit code a moment after
                    # the death, maybe after the crash was recorded. Never book it NULL.
                    info = exits.wait_exit_info(
                        self.cfg.exits_dir_path, old.pid, old.started_at, EXIT_RECORD_WAIT
                    )
                    if info is not None and info.exit_code is not None:
                        old = dataclasses.replace(old, exit_code=info.exit_code)
                self.ctx.sources.write_respawn(old, new, restarted=restarted)
            except (SourceWriteError, StoreError) as exc:
                self.ctx.emit(
                    "write_back_failed",
                    f"could not record respawned pid {new.pid}: {exc}"[:500],
                    agent_key=new.key,
                )
            return
        fmt = self.state.last_view.format if self.state.last_view else "real"

        def mutate(data: dict[str, Any]) -> None:
            active = data.setdefault("active_agents", {})
            old_entry = active.get(str(old.pid)) if isinstance(active, dict) else None
            entry: dict[str, Any] = {}
            if isinstance(old_entry, dict):
                entry = {
                    k: v
                    for k, v in old_entry.items()
                    if k
                    in (
                        "agent_type",
                        "task_id",
                        "task_type",
                        "priority_number",
                        "worktree_path",
                        "cwd",
                    )
                }
                same = timeutil.to_epoch(old_entry.get("started_at"))
                if old.started_at is None or same is None or abs(same - old.started_at) < 5:
                    statewrite.move_to_completed(
                        data,
                        str(old.pid),
                        completed_at=timeutil.now(),
                        status="killed" if restarted else "failed",
                        exit_code=old.exit_code,
                        reason="restarted by operator"
                        if restarted
                        else "crashed; respawned by ohm",
                    )
            started = new.create_time or timeutil.now()
            entry.update(
                pid=new.pid,
                agent_type=old.agent_type,
                task_id=old.task_id,
                command=new.command if fmt == "ohm" else shlex.join(new.command),
                started_at=timeutil.iso_utc(started)
                if fmt == "ohm"
                else timeutil.iso_local_naive(started),
                status="running",
                log_file=new.log_file,
                respawned_by="ohm",
                respawn_of=old.key,
            )
            if new.cwd:
                entry["cwd"] = new.cwd
            statewrite.add_active_entry(data, entry)

        try:
            statewrite.update_agent_state(self.cfg.agent_state_path, mutate)
        except (statefile.StateFileError, OSError) as exc:
            self.ctx.emit(
                "write_back_failed",
                f"could not write respawned pid {new.pid} back into the state file: {exc}"[:500],
                agent_key=new.key,
            )
