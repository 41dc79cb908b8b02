"""Stopping a run on purpose: marker event first, identity-checked signals, booked as killed."""

from __future__ import annotations

import logging
from typing import Any

from ohm_tui.engine import timeutil
from ohm_tui.engine.actions.base import ActionBase
from ohm_tui.engine.model import (
    ActionResult,
    AgentRecord,
    EventKind,
    Lifecycle,
)
from ohm_tui.engine.sources import statefile, statewrite
from ohm_tui.engine.system import signals

log = logging.getLogger("ohm.fixes")


class Stopper(ActionBase):
    """Stopping a run on purpose: marker event first, identity-checked signals, booked as killed."""

    def stop(self, rec: AgentRecord, *, restart: bool = False) -> ActionResult:
        """SIGTERM, then SIGKILL after the grace period, only after checking identity.

        The operator's intent is recorded first, as a ``stopped_by_operator`` (or
        ``restarted_by_operator``) event: the death that follows is then never
        taken for a crash, by this monitor or any other (no crash row, no
        crash-storm count, no respawn). A stop that does not happen cancels it.
        Called WITHOUT the monitor's lock: it waits out a grace period.
        """
        if rec.source == "session":
            msg = f"{rec.agent_type} is a session (a thread of the orchestrator): never signalled"
            return ActionResult(False, "stop", msg, agent_key=rec.key)
        grace = self.cfg.stop_grace_period
        who = f"{rec.agent_type} pid {rec.pid}"
        fields: dict[str, Any] = {
            "agent_key": rec.key,
            "agent_pid": rec.pid,
            "agent_type": rec.agent_type,
            "task_id": rec.task_id,
        }
        # Only a live run gets the marker: one that died already (maybe unseen yet)
        # crashed, and its crash must be recorded, never explained away.
        alive = self.is_running(rec)
        if alive:
            with self.ctx.lock:
                marked = self.move(
                    Lifecycle.RUNNING,
                    Lifecycle.RESTARTING if restart else Lifecycle.STOPPING,
                    f"{who} {'restarted' if restart else 'stopped'} by operator "
                    f"(SIGTERM, then SIGKILL after {grace:g}s)",
                    **fields,
                )
            if marked is None:
                return ActionResult(
                    False, "stop", f"not stopped: cannot record the stop first ({who})", rec.key
                )
        outcome = signals.terminate_verified(
            rec.pid,
            create_time=rec.create_time,
            started_at=rec.started_at,
            tolerance=self.cfg.pid_start_tolerance,
            command=rec.command or None,
            grace=grace,
            group=True,
        )
        gone: tuple[str, ...] = ("terminated", "killed", "not_running")
        if restart:  # the old run is gone either way: a zombie is dead, a new PID owner not it
            gone += ("zombie", "identity_mismatch")
        ok = outcome in gone
        msg = f"stop {who}: {outcome.replace('_', ' ')}"
        if outcome == "identity_mismatch":
            msg += " (PID now belongs to another process: not signalled)"
        elif outcome == "still_running":
            msg += " (still there after SIGKILL; it will not die)"
        marker = Lifecycle.RESTARTING if restart else Lifecycle.STOPPING
        with self.ctx.lock:
            if not alive:  # nothing moved: the report of a stop of a run already gone
                if not restart or not ok:
                    self.ctx.emit(EventKind.STOPPED, msg, **fields)
            elif ok:  # killed on purpose: ``stopped`` for a stop, nothing for a restart
                self.move(marker, Lifecycle.KILLED, msg, **fields)
                if not restart and rec.source in ("real", "ohm"):
                    self._book_stopped(rec)
            else:  # the report, then the marker cancelled: the run goes on
                self.ctx.emit(EventKind.STOPPED, msg, **fields)
                self.move(marker, Lifecycle.RUNNING, f"{who} was not stopped", **fields)
        return ActionResult(ok, "stop", msg, agent_key=rec.key)

    def _book_stopped(self, rec: AgentRecord) -> None:
        """Move a stopped entry to ``completed_agents`` as ``killed`` (as the
        orchestrator books its own kills), so no check takes it for a crash."""

        def mutate(data: dict[str, Any]) -> None:
            active = data.get("active_agents")
            entry = active.get(str(rec.pid)) if isinstance(active, dict) else None
            if not isinstance(entry, dict):
                return
            same = timeutil.to_epoch(entry.get("started_at"))
            if (
                rec.started_at is not None
                and same is not None
                and abs(same - rec.started_at) > self.cfg.pid_start_tolerance
            ):
                return  # a newer run under this PID: not ours to move
            statewrite.move_to_completed(
                data,
                str(rec.pid),
                completed_at=timeutil.now(),
                status="killed",
                exit_code=rec.exit_code,
                reason="stopped by operator",
            )

        try:
            statewrite.update_agent_state(self.cfg.agent_state_path, mutate)
        except (statefile.StateFileError, OSError) as exc:
            self.ctx.emit(
                "write_back_failed",
                f"could not book stopped pid {rec.pid} in the state file: {exc}"[:500],
                agent_key=rec.key,
            )
