"""The fast death path: runs watched through pidfds, a death handled the instant it happens."""

from __future__ import annotations

import logging
from collections.abc import Callable

from ohm_tui.engine import timeutil
from ohm_tui.engine.detect import observe
from ohm_tui.engine.model import (
    ActionResult,
    AgentRecord,
    ExitInfo,
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

# Seconds without a death before the death path asks for a full check: the first
# death of a storm must not start a check (it holds the monitor for 100 ms or more)
# while the rest of the storm is still dying.
DEATHS_QUIET = 0.2
# Deaths recorded per transaction: small enough that the first deaths of a storm are
# on record while the later ones are still being read, large enough to commit rarely.
RECORD_CHUNK = 16


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
        """Only queue the death: the watcher's round end (``deaths_settled``) takes every
        death of the round at once."""

        def on_death(pid: int, when: float | None) -> None:
            self._deaths_queued.append((key, when or timeutil.now()))

        return on_death

    def deaths_settled(self) -> None:
        """The pid watcher's round end: record every queued death, then act on them."""
        try:
            batch: list[tuple[str, float]] = []
            while self._deaths_queued:
                batch.append(self._deaths_queued.popleft())
            if batch:
                self._to_act.extend(self._record_deaths(batch))
            self._act_on_deaths(yield_to_deaths=True)
        except Exception:
            log.exception("death handler failed")

    def on_death(self, key: str, when: float) -> None:
        """A watched agent died (found outside the watcher's rounds): record it, then act."""
        self._to_act.extend(self._record_deaths([(key, when)]))
        self._act_on_deaths(yield_to_deaths=False)

    def _record_deaths(self, deaths: list[tuple[str, float]]) -> list[int]:
        """Record first: the crashes among ``deaths``, nothing acted on yet (a respawn
        takes milliseconds that the deaths still queued would wait). In order, a
        transaction per ``RECORD_CHUNK`` deaths: the first of a storm's 200 deaths is
        on record before the last is read. Returns the crash ids to act on."""
        crash_ids: list[int] = []
        for i in range(0, len(deaths), RECORD_CHUNK):
            crash_ids += self._record_chunk(deaths[i : i + RECORD_CHUNK])
        return crash_ids

    def _record_chunk(self, deaths: list[tuple[str, float]]) -> list[int]:
        with self._lock:
            crashes: list[Observation] = []
            exits: list[tuple[Observation, ExitInfo]] = []
            for key, when in deaths:
                seen = self._observe_death(key, when)
                if seen is None:
                    continue
                obs, ex = seen
                if obs.is_crash and obs.crash is not None:
                    if self._from_state_file(obs.record):
                        continue  # a file not read this time: show, never act
                    crashes.append(obs)
                elif obs.liveness != Liveness.ENDED_OK:
                    continue
                if ex is not None:
                    exits.append((obs, ex))
            crash_ids = self._record_crashes(crashes, timeutil.now()) if crashes else []
            for obs, ex in exits:
                self._ingest_exits([obs], {obs.record.pid: ex})
            return crash_ids

    def _observe_death(self, key: str, when: float) -> tuple[Observation, ExitInfo | None] | None:
        """Classify a watched run that just died (the monitor's lock held), with the
        exit record its runner wrote (ohm's own runs)."""
        obs = self._observations.get(key)
        if obs is None:
            return None
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
        return new, ex

    def _act_on_deaths(self, *, yield_to_deaths: bool) -> None:
        """Act after: respawn the crashes just recorded, one at a time. With
        ``yield_to_deaths`` it stops as soon as more deaths are waiting: they are
        recorded first, in the watcher's next round (at once), which then acts on the
        rest. The full check that settles bugs and status is asked for when done and
        no death came for ``DEATHS_QUIET`` seconds."""
        fixer = bool(self._to_act) and self.auto_fix and self.is_fixer()
        w = self._watcher
        while self._to_act:
            if yield_to_deaths and w is not None and w.deaths_waiting():
                return
            try:
                crash_id = self._to_act.popleft()
            except IndexError:  # taken by another thread's death
                break
            if fixer:  # the store's claim makes each respawn happen once
                with self._lock:
                    self._adopt_respawns(self.fixer.handle_pending(only=crash_id))
                    self._emit_new_events()
        if yield_to_deaths and w is not None and w.deaths_waiting(DEATHS_QUIET):
            return  # a storm goes on: its deaths first, the full check when it pauses
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
        index = self._fresh_index
        if index is None or index[0] is not view:  # by key, once per view, not per death
            index = self._fresh_index = (view, {a.key: a for a in view.agents})
        fresh = index[1].get(rec.key)
        if fresh is None:
            return rec
        fresh.log_file = fresh.log_file or rec.log_file
        fresh.create_time = fresh.create_time or rec.create_time
        fresh.cwd = fresh.cwd or rec.cwd
        return fresh
