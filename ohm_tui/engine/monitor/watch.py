"""The fast death path: runs watched through pidfds, a death handled the instant it happens."""

from __future__ import annotations

import logging
from collections.abc import Callable

from ohm_tui.engine import timeutil
from ohm_tui.engine.detect import observe
from ohm_tui.engine.model import (
    ActionResult,
    AgentRecord,
    Liveness,
    Observation,
)
from ohm_tui.engine.monitor.base import _ohm_record
from ohm_tui.engine.monitor.issues import IssueSteps
from ohm_tui.engine.sources import statefile
from ohm_tui.engine.store import StoreError
from ohm_tui.engine.system import exits as exit_records
from ohm_tui.engine.system import procs

log = logging.getLogger("ohm.monitor")


class Watches(IssueSteps):
    """The fast death path: runs watched through pidfds, a death handled the instant it happens."""

    def _adopt_respawns(self, results: list[ActionResult]) -> None:
        """Watch the runs ohm just started, so their deaths take the fast path too."""
        for res in results:
            if res.ok and res.action == "respawn" and res.agent_key:
                self._adopt_spawned(res.agent_key)

    def _adopt_spawned(self, agent_key: str) -> bool:
        """Watch an agent ohm just respawned at once, not from the next check on
        (it may crash again before that). False if it is not in ``ohm_agents``."""
        try:
            row = self.store.ohm_agent(agent_key)
        except StoreError:
            return False
        if row is None:
            return False
        self._adopt(_ohm_record(row))
        return True

    def _adopt(self, rec: AgentRecord) -> Observation:
        """Observe and watch an agent ohm has just started."""
        obs = Observation(rec, Liveness.ALIVE)
        raw = procs.read_proc(rec.pid)
        obs.raw = raw
        if raw is None:
            obs.liveness = Liveness.DEAD
        self._observations[rec.key] = obs
        self._alive_keys.add(rec.key)
        watched = False
        if self._watcher is not None and raw is not None:
            watched = self._watcher.watch(rec.pid, raw.start_time, self._make_death_cb(rec.key))
        if not watched and self.running:
            self.wake()  # already gone (or no watcher): the next full check finds it
        return obs

    def _arm_watches(self) -> None:
        w = self._watcher
        if w is None:
            return
        watching = w.watching()
        for key, obs in list(self._observations.items()):
            if (
                obs.liveness == Liveness.ALIVE
                and obs.record.pid not in watching
                and obs.raw is not None
            ):
                rec = obs.record
                if not w.watch(rec.pid, obs.raw.start_time, self._make_death_cb(key)):
                    # It died between the check and now: handle it now, not a cycle later.
                    self.on_death(key, timeutil.now())

    def watching(self) -> set[int]:
        """PIDs whose death is reported the instant it happens (background mode)."""
        w = self._watcher
        return w.watching() if w is not None else set()

    def _make_death_cb(self, key: str) -> Callable[[int, float | None], None]:
        def on_death(pid: int, when: float | None) -> None:
            try:
                self.on_death(key, when or timeutil.now())
            except Exception:
                log.exception("death handler failed for %s", key)

        return on_death

    def on_death(self, key: str, when: float) -> None:
        """Event path: a watched agent died. Record it (and respawn it) right now."""
        with self._lock:
            obs = self._observations.get(key)
            if obs is None:
                return
            rec = self._fresh_record(obs.record)
            ex = None
            if rec.source == "ohm_spawned":
                ex = exit_records.wait_exit_info(
                    self.config.exits_dir_path, rec.pid, rec.started_at, 0.05
                )
            self._dead_since.setdefault(key, when)
            # Not reaped yet (an era-1 agent stays its orchestrator's zombie): its
            # exit status is readable now, and only now.
            raw = procs.read_proc(rec.pid)
            table = {rec.pid: raw} if raw is not None and raw.state == "Z" else {}
            new = observe.observe(
                rec,
                table=table,
                config=self.config,
                now=timeutil.now(),
                seen_before=True,
                exit_info=ex or self._death_exits.get(key),
                dead_since=when,
                watched=True,
            )
            self._remember_death(new)
            self._observations[key] = new
            if not new.is_crash or new.crash is None:
                if new.liveness == Liveness.ENDED_OK and ex is not None:
                    self._ingest_exits([new], {rec.pid: ex})
                self.wake()  # let the next full check settle it (grace, cleanup)
                return
            if self._from_state_file(rec):
                return
            crash_id = self._record_crash(new, timeutil.now())
            if ex is not None:
                self._ingest_exits([new], {rec.pid: ex})
            if crash_id is not None and self.auto_fix and self.is_fixer():
                self._adopt_respawns(self.fixer.handle_pending(only=crash_id))
            self._emit_new_events()
            self.wake()  # the rest (bugs, status) at the next full check, coalesced

    def _fresh_record(self, rec: AgentRecord) -> AgentRecord:
        """The state file's entry for this run as it is now: the orchestrator may have
        marked it ``killed`` just before it stopped it, after the last check read it."""
        if rec.source not in ("real", "ohm"):  # not an agent_state.json entry
            return rec
        json_source = self._sources.json
        if json_source is None:
            return rec
        try:  # parsed again only if it changed since read (a storm of deaths reads it once)
            view = self._last_view = json_source.read_view(racy_reread=False)
        except statefile.StateFileError:
            return rec
        for fresh in view.agents:
            if fresh.key == rec.key:
                fresh.log_file = fresh.log_file or rec.log_file
                fresh.create_time = fresh.create_time or rec.create_time
                fresh.cwd = fresh.cwd or rec.cwd
                return fresh
        return rec
