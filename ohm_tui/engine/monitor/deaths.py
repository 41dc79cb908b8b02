"""Deaths: crash rows recorded once, exit records ingested, operators' stops told apart."""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from ohm_tui.engine import timeutil
from ohm_tui.engine.fmt import count
from ohm_tui.engine.model import (
    OPERATOR_STOPS,
    AgentRecord,
    ExitInfo,
    FixState,
    Lifecycle,
    Liveness,
    Observation,
)
from ohm_tui.engine.monitor.base import OPERATOR_STOP_LOOKBACK, MonitorBase, _ohm_record
from ohm_tui.engine.sources import sessions as session_source
from ohm_tui.engine.store import StoreError
from ohm_tui.engine.store.crashes import NewCrash
from ohm_tui.engine.system import exits as exit_records

log = logging.getLogger("ohm.monitor")


class Deaths(MonitorBase):
    """Deaths: crash rows recorded once, exit records ingested, operators' stops told apart."""

    def _exit_infos(self) -> dict[int, ExitInfo]:
        return exit_records.scan_exit_infos(self.config.exits_dir_path)

    def _ohm_records(self) -> list[AgentRecord]:
        return [_ohm_record(row) for row in self.store.list_ohm_agents(running_only=True)]

    def _from_state_file(self, rec: AgentRecord) -> bool:
        """Listed by a source that could not be read this time (show, never act)."""
        if rec.source in ("real", "ohm"):
            return not self._state_ok
        return not self._sources.ok_for(rec)

    def _record_crashes(self, observations: list[Observation], now: float) -> list[int]:
        """Record every crash among ``observations`` in one transaction, each with its
        ``crashed`` event: a storm of deaths commits once, not once per death. Returns
        the crash ids (new or already recorded) of the crashes that have a row."""
        todo: list[tuple[Observation, NewCrash]] = []
        for obs in observations:
            if obs.is_crash and obs.crash is not None:
                new = self._crash_row(obs, now)
                if new is not None:
                    todo.append((obs, new))
        if not todo:
            return []
        try:
            store = self.store
            with store.transaction():
                results = store.record_crashes([new for _, new in todo])
                for (obs, _), (crash_id, created) in zip(todo, results, strict=True):
                    if not created:
                        continue
                    message, about = _crash_message(obs), _about(obs, crash_id)
                    # The lifecycle's one check; the event commits with its crash row.
                    allowed, kind = self.context.check_move(
                        Lifecycle.RUNNING, Lifecycle.CRASHED, message, **about
                    )
                    if allowed and kind is not None:
                        store.add_event(kind, message, **about)
        except StoreError as exc:
            # Nothing of the batch is kept; each run is still a crash to the next check.
            log.warning("could not record %s: %s", count(len(todo), "crash"), exc)
            self._write_error = self._write_error or str(exc)
            return []
        for (obs, _), (_, created) in zip(todo, results, strict=True):
            if created:
                self.fixer.note_exit(obs.record, obs, now)
        self._emit_new_events()
        return [crash_id for crash_id, _ in results]

    def _stopped_by_operator(self, key: str, now: float) -> bool:
        """Did an operator stop (or restart) this run? Then its death is no crash.

        Read from the timeline, so a stop made by another process (``ohm stop``
        while the console watches) counts too; remembered per run.
        """
        known = self._operator_stopped.get(key)
        if known is not None:
            return known
        try:
            kind = self.store.operator_stop(key, now - OPERATOR_STOP_LOOKBACK)
        except StoreError:
            return False  # cannot tell: record the crash rather than hide one
        stopped = kind in OPERATOR_STOPS
        self._operator_stopped[key] = stopped
        return stopped

    def _crash_row(self, obs: Observation, now: float) -> NewCrash | None:
        """The crash row for a run that crashed; None when an operator stopped it."""
        rec = obs.record
        info = obs.crash
        assert info is not None
        if self._stopped_by_operator(rec.key, now):
            # Stopped on purpose: history has its event; no crash row, no respawn.
            obs.is_crash = False
            obs.crash = None
            self.fixer.skip_exit(rec.key)  # nor a fast exit (flapping)
            return None
        actionable = obs.recent and bool(rec.command) and not self.read_only
        skipped = "not respawned: died before ohm was watching"
        if rec.source == "session":
            skipped = session_source.NOT_RESPAWNED
        return NewCrash(
            agent_key=rec.key,
            agent_pid=rec.pid,
            agent_type=rec.agent_type,
            task_id=rec.task_id,
            crashed_at=obs.died_at or now,
            exit_code=obs.exit_code,
            info=info,
            log_file=rec.log_file,
            command_text=rec.command_text,
            cwd=rec.cwd or rec.worktree_path or self._proc_cwds.get(rec.key),
            source=rec.source,
            action_taken=None if actionable else skipped,
            fix_state=FixState.PENDING if actionable else FixState.SKIPPED,
        )

    def _ingest_exits(self, observations: list[Observation], exits: dict[int, ExitInfo]) -> None:
        """Close ohm-spawned runs whose runner recorded an exit; then drop the exit file."""
        for obs in observations:
            rec = obs.record
            ex = exits.get(rec.pid)
            if ex is None or obs.liveness == Liveness.ALIVE:
                continue
            try:
                if self.store.ohm_agent(rec.key) is not None:
                    self.store.mark_ohm_agent_exited(
                        rec.key, exit_code=ex.exit_code, ended_ts=ex.ended_at or timeutil.now()
                    )
                    if not obs.is_crash:
                        self.fixer.note_exit(rec, obs, timeutil.now())
                if ex.path is not None:
                    ex.path.unlink(missing_ok=True)
                    # Its exit code still shows while the run is listed (how it ended).
                    self._ingested[rec.key] = dataclasses.replace(ex, path=None)
            except (StoreError, OSError) as exc:
                log.warning("could not ingest exit of %s: %s", rec.key, exc)

    def _remember_death(self, obs: Observation) -> None:
        """Keep the exit code read from an agent's zombie: after the reap it is gone."""
        if (
            obs.zombie
            and obs.exit_code is not None
            and obs.liveness in (Liveness.DEAD, Liveness.ENDED_OK)
        ):
            rec = obs.record
            self._death_exits.setdefault(
                rec.key, ExitInfo(rec.pid, rec.started_at, obs.died_at, obs.exit_code)
            )

    def _forget_deaths(self, listed: set[str], now: float) -> None:
        """Bounded by the runs listed (only a listed run is observed again) and the ones
        its orchestrator just closed: a crash seen by a look that records nothing is
        recorded from the closed entry, with the exit code read from its zombie."""
        self._death_exits = {k: v for k, v in self._death_exits.items() if k in listed}


def _crash_message(obs: Observation) -> str:
    """The ``crashed`` event's text: who died, on what, and why."""
    rec, info = obs.record, obs.crash
    msg = f"{rec.agent_type} pid {rec.pid} crashed"
    if rec.source == "session":
        msg = f"{rec.agent_type} session failed"
    if rec.task_id:
        msg += f" on {rec.task_id}"
    if info is not None and info.error_type:
        msg += f": {info.error_type}"
        if info.error_message:
            msg += f": {info.error_message}"
    return msg[:500]


def _about(obs: Observation, crash_id: int) -> dict[str, Any]:
    rec = obs.record
    return {
        "agent_key": rec.key,
        "agent_pid": rec.pid,
        "agent_type": rec.agent_type,
        "task_id": rec.task_id,
        "crash_id": crash_id,
    }
