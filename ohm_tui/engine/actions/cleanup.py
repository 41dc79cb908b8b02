"""Cleanup: stale entries moved to completed, our zombies reaped."""

from __future__ import annotations

import logging
import os
from typing import Any

from ohm_tui.engine import timeutil
from ohm_tui.engine.actions.base import STALE_SOURCES, ActionBase
from ohm_tui.engine.fmt import count
from ohm_tui.engine.model import (
    ActionResult,
    FixState,
    Liveness,
    Observation,
)
from ohm_tui.engine.sources import statefile, statewrite
from ohm_tui.engine.sources.base import SourceWriteError
from ohm_tui.engine.store import StoreError
from ohm_tui.engine.system import procs

log = logging.getLogger("ohm.fixes")


class Cleanup(ActionBase):
    """Cleanup: stale entries moved to completed, our zombies reaped."""

    def stale(self, observations: list[Observation]) -> list[Observation]:
        """Entries to move to completed_agents: dead, and not waiting for a respawn
        (a pending respawn moves its own entry when it writes the new PID back)."""
        out = []
        for o in observations:
            if not (
                o.stale_entry and o.record.source in STALE_SOURCES and o.liveness != Liveness.ALIVE
            ):
                continue
            if o.record.source in ("real", "ohm") and not self.state.state_ok:
                continue  # a file ohm cannot read now is never written
            if not self.ctx.sources.ok_for(o.record):
                continue
            if o.is_crash:
                try:
                    row = self.ctx.store.crash_by_key(o.record.key)
                except StoreError:
                    continue
                if row is None or row.fix_state in (FixState.PENDING, FixState.CLAIMED):
                    continue
            out.append(o)
        return out

    def plan_cleanup(self, observations: list[Observation]) -> list[str]:
        """Exactly what ``clean`` would do, one line each, for confirmation prompts."""
        lines = []
        for o in self.stale(observations):
            r = o.record
            where = "completed_agents" if r.source in ("real", "ohm") else "completed (its row)"
            lines.append(
                f"move stale entry pid {r.pid} ({r.agent_type} {r.task_id or '-'}) "
                f"to {where}: {o.reason}"
            )
        for o in observations:
            if (o.zombie or o.liveness == Liveness.ZOMBIE) and o.raw is not None:
                whose = (
                    "reap (ohm's own child)"
                    if o.raw.ppid == os.getpid()
                    else (f"report parent {o.raw.ppid} (not ohm's child; cannot reap)")
                )
                lines.append(f"zombie pid {o.record.pid} ({o.record.agent_type}): {whose}")
        return lines

    def clean(self, observations: list[Observation]) -> ActionResult:
        """Move stale entries to completed_agents, as the orchestrator does; reap our zombies."""
        stale = self.stale(observations)
        rows = [o for o in stale if o.record.source not in ("real", "ohm")]
        stale = [o for o in stale if o.record.source in ("real", "ohm")]
        moved: list[int] = []
        tol = self.cfg.pid_start_tolerance

        def mutate(data: dict[str, Any]) -> None:
            moved.clear()
            active = data.get("active_agents")
            if not isinstance(active, dict):
                return
            fmt = statefile.detect_format(data)  # once: it scans every entry
            for o in stale:
                r = o.record
                entry = active.get(str(r.pid))
                if not isinstance(entry, dict):
                    continue
                started = timeutil.to_epoch(entry.get("started_at"))
                if (
                    r.started_at is not None
                    and started is not None
                    and abs(started - r.started_at) > tol
                ):
                    continue  # the orchestrator put a new run under this PID meanwhile
                raw = procs.read_proc(r.pid)
                if (
                    raw is not None
                    and raw.state != "Z"
                    and procs.identity_matches(
                        r.pid,
                        started_at=r.started_at,
                        create_time=r.create_time,
                        tolerance=tol,
                        command=r.command or None,
                        raw=raw,
                    )
                ):
                    continue  # alive after all: never touch a live entry
                if o.liveness == Liveness.NOT_RUNNING:
                    status = r.status  # the orchestrator's own word: completed, killed...
                elif o.exit_code in (0, None) and not o.is_crash:
                    status = "completed"
                else:
                    status = "failed"
                if statewrite.move_to_completed(
                    data,
                    str(r.pid),
                    completed_at=timeutil.now(),
                    status=status,
                    exit_code=o.exit_code,
                    reason=f"cleaned by ohm: {o.reason}",
                    fmt=fmt,
                ):
                    moved.append(r.pid)

        if stale:
            try:
                statewrite.update_agent_state(self.cfg.agent_state_path, mutate)
            except (statefile.StateFileError, OSError) as exc:
                return ActionResult(False, "clean_zombies", f"cleanup failed: {exc}")
        for o in rows:
            if o.exit_code is None:  # its exit record is consumed: the crash row kept it
                try:
                    crash = self.ctx.store.crash_by_key(o.record.key)
                except StoreError:
                    crash = None
                if crash is not None and crash.exit_code is not None:
                    o.exit_code, o.is_crash = crash.exit_code, True
        if rows:
            try:
                moved += self.ctx.sources.move_stale(rows, timeutil.now())
            except SourceWriteError as exc:
                return ActionResult(False, "clean_zombies", f"cleanup failed: {exc}")
        reaped = [pid for pid, _ in self.ctx.spawner.reap_children()]
        msg = f"moved {count(len(moved), 'stale entry')} to completed_agents"
        if reaped:
            msg += f"; reaped {count(len(reaped), 'zombie')}"
        if moved or reaped:
            self.ctx.emit("cleaned", msg, data={"pids": moved, "reaped": reaped})
        return ActionResult(True, "clean_zombies", msg, details={"moved": moved, "reaped": reaped})
