"""The respawn ledger's bookkeeping: fast exits (flapping), stable runs, given-up tasks."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from ohm_tui.engine import timeutil
from ohm_tui.engine.actions.base import ActionBase
from ohm_tui.engine.context import CheckState, EngineContext
from ohm_tui.engine.fmt import count
from ohm_tui.engine.model import (
    AgentRecord,
    AgentView,
    CrashRow,
    Issue,
    Lifecycle,
    Liveness,
    Observation,
    signal_name,
    task_key,
)
from ohm_tui.engine.store import RespawnState, StoreError

log = logging.getLogger("ohm.fixes")


class RespawnLedger(ActionBase):
    """The respawn ledger's bookkeeping: fast exits (flapping), stable runs, given-up tasks."""

    def __init__(self, ctx: EngineContext, state: CheckState) -> None:
        super().__init__(ctx, state)
        self.noted: set[str] = set()  # runs whose exit was counted (bounded: see prune)
        self._tasks: set[str] = set()
        # Tasks given up, as of the last check: the ledger's state and the newest crash.
        self.given_up: dict[str, tuple[RespawnState, CrashRow | None]] = {}

    def forget_unlisted(self, listed: set[str]) -> None:
        """Runs no longer listed are never observed again: forget that they were counted.
        Tasks with nothing left to say (not listed now, not given up, not flapping) go
        too: a daemon sees a new task with every run. The store keeps their counts, and
        a task listed again is read from it."""
        self.noted &= listed
        now = timeutil.now()
        keep = self._observed_tasks()
        for tk in self._tasks - keep:
            try:
                st = self.ctx.store.get_respawn_state(tk)
            except StoreError:
                keep.add(tk)  # unknown: keep it, never drop a given-up task
                continue
            if st.given_up or self.is_flapping(st, now):
                keep.add(tk)
        self._tasks &= keep

    def note_task(self, tk: str) -> None:
        """A task with a crash: its flapping and given-up state are reported."""
        self._tasks.add(tk)

    def note_exit(self, rec: AgentRecord, obs: Observation, now: float) -> None:
        """Count fast clean exits (flapping) and reset the respawn count after a stable run.

        Crashes have their own limit (``max_respawn_attempts``); flapping is the
        agent that exits 0 moments after every start, which no crash counter sees.
        """
        if rec.key in self.noted:
            return
        self.noted.add(rec.key)
        tk = task_key(rec.agent_type, rec.task_id)
        self._tasks.add(tk)
        if rec.started_at is None:
            return
        runtime = (obs.died_at or now) - rec.started_at
        try:
            st = self.ctx.store.get_respawn_state(tk)
            changed = False
            if runtime < self.cfg.flap_min_runtime and not obs.is_crash:
                recent = [t for t in st.recent_fast_exits if now - t <= self.cfg.flap_window]
                st.recent_fast_exits = [*recent, now][-50:]
                changed = True
            elif runtime >= self.cfg.respawn_stable_after and st.attempts and not st.given_up:
                st.attempts = 0
                changed = True
            if changed:
                self.ctx.store.save_respawn_state(st)
        except StoreError as exc:
            log.warning("could not update respawn state for %s: %s", tk, exc)

    def note_completed(self, records: list[AgentRecord], now: float) -> None:
        """Fast clean exits the orchestrator booked in ``completed_agents``.

        The real orchestrator restarted agents that exited 0 after ~10 s, every
        11 s, forever: its own loop, which ohm sees only through these entries.
        Each run counts once, by its ``completed_at``, so the same entries read
        by every check (or by several monitors) are never counted twice. Entries
        ohm itself completed are counted where ohm saw them end.
        """
        ends: dict[str, list[float]] = {}
        for rec in records:
            raw = rec.raw
            if rec.status != "completed" or rec.exit_code not in (0, None):
                continue
            if not rec.task_id:
                continue  # quick jobs of one agent type are normal; one task again and again is not
            if raw.get("respawned_by") == "ohm" or str(raw.get("reason", "")).startswith(
                "cleaned by ohm"
            ):
                continue
            ended = timeutil.to_epoch(raw.get("completed_at"))
            if ended is None or rec.started_at is None or now - ended > self.cfg.flap_window:
                continue
            if ended - rec.started_at >= self.cfg.flap_min_runtime:
                continue
            ends.setdefault(task_key(rec.agent_type, rec.task_id), []).append(round(ended, 3))
        for tk, times in ends.items():
            self._tasks.add(tk)
            try:
                st = self.ctx.store.get_respawn_state(tk)
                known = {round(t, 3) for t in st.recent_fast_exits}
                new = [t for t in times if t not in known]
                if not new:
                    continue
                kept = [t for t in st.recent_fast_exits if now - t <= self.cfg.flap_window]
                st.recent_fast_exits = sorted(kept + new)[-50:]
                self.ctx.store.save_respawn_state(st)
            except StoreError as exc:
                log.warning("could not count fast exits of %s: %s", tk, exc)

    def is_flapping(self, st: RespawnState, now: float) -> bool:
        return self.policy.is_flapping(st, now)

    def flapping_issues(self, now: float) -> list[Issue]:
        issues = []
        for tk in sorted(self._tasks | self._observed_tasks()):
            st = self.ctx.store.get_respawn_state(tk)
            if self.is_flapping(st, now):
                n = self.policy.fast_exits(st, now)
                issues.append(
                    Issue(
                        type="flapping",
                        severity="degraded",
                        error=f"{tk} exited soon after start {count(n, 'time')} in "
                        f"{int(self.cfg.flap_window)} s; not respawning it",
                        task_id=tk.split(":", 1)[1] if tk.startswith("task:") else None,
                        details={"task_key": tk, "fast_exits": n},
                    )
                )
        return issues

    def given_up_issues(
        self, found: list[Issue], observations: list[Observation], now: float, *, write: bool
    ) -> list[Issue]:
        """``found`` with one ``agent_crash`` issue (``given_up``) per task given up
        within the retention window, read from the ledger: a fresh process sees it
        after the task's entries left the state file. It takes the place of the
        task's crash issues (one issue per task). A live run of the task started
        after the give-up ends it (written back when ``write``): the task runs again.
        """
        self.given_up = {}
        since = now - self.cfg.retention_days * 86400.0
        live: dict[str, float] = {}
        for o in observations:
            if o.liveness == Liveness.ALIVE:
                tk = task_key(o.record.agent_type, o.record.task_id)
                started = (o.raw.start_time if o.raw else None) or o.record.started_at or 0.0
                live[tk] = max(live.get(tk, 0.0), started)
        added: list[Issue] = []
        for st in self.ctx.store.given_up_states(since):
            tk = st.task_key
            if live.get(tk, -1.0) >= (st.given_up_ts or 0.0) - 1.0:
                if write:
                    self._runs_again(st)
                continue
            crash = self.ctx.store.latest_crash_of_task(tk)
            self.given_up[tk] = (st, crash)
            added.append(self._given_up_issue(st, crash))
        kept = [
            i
            for i in found
            if not (i.type == "agent_crash" and task_key(i.agent_type, i.task_id) in self.given_up)
        ]
        return [*kept, *added]

    def _runs_again(self, st: RespawnState) -> None:
        """The task runs again (the orchestrator or someone started it): no longer given up."""
        st.given_up = False
        st.given_up_ts = None
        st.attempts = 0
        st.next_allowed_ts = None
        try:
            self.ctx.store.save_respawn_state(st)
        except StoreError as exc:
            log.warning("could not clear the give-up of %s: %s", st.task_key, exc)

    def _given_up_issue(self, st: RespawnState, crash: CrashRow | None) -> Issue:
        tk = st.task_key
        why = ""
        if crash is not None and crash.error_type:
            why = f" ({crash.error_type})"
        return Issue(
            type="agent_crash",
            severity="degraded",
            error=f"{tk} given up after {count(st.attempts, 'respawn')}{why}; "
            "respawn it by hand once fixed",
            agent_pid=crash.agent_pid if crash else None,
            agent_type=crash.agent_type if crash else None,
            task_id=crash.task_id if crash else _task_of(tk),
            agent_key=crash.agent_key if crash else None,
            crash_id=crash.crash_id if crash else None,
            action_taken="gave up",
            details={"task_key": tk, "given_up": True, "since": st.given_up_ts},
        )

    def given_up_views(
        self, shown: list[AgentView], last_line: Callable[[str], str | None]
    ) -> list[AgentView]:
        """A row per given-up task (status ``given_up``, with how its last run ended)
        that no listed entry shows: its entries may have left the state file."""
        views = []
        for tk, (st, crash) in self.given_up.items():
            if crash is None or any(
                v.key == crash.agent_key
                or (v.status == Lifecycle.GIVEN_UP and task_key(v.agent_type, v.task_id) == tk)
                for v in shown
            ):
                continue
            how = crash.error_type or None
            if how and crash.error_message:
                how = f"{how}: {crash.error_message}"
            views.append(
                AgentView(
                    key=crash.agent_key,
                    pid=crash.agent_pid,
                    agent_type=crash.agent_type,
                    task_id=crash.task_id,
                    status=Lifecycle.GIVEN_UP,
                    source=self.record_from_crash(crash).source,
                    started_at=None,
                    cpu_percent=None,
                    rss_bytes=None,
                    respawns=st.attempts,
                    max_respawns=self.cfg.max_respawn_attempts,
                    next_respawn_at=None,
                    last_log_line=last_line(crash.log_file) if crash.log_file else None,
                    command_text=crash.command_text or "",
                    cwd=crash.cwd,
                    log_file=crash.log_file,
                    exit_code=crash.exit_code,
                    reason=how,
                    exit_signal=signal_name(crash.exit_code),
                )
            )
        return views

    def _observed_tasks(self) -> set[str]:
        return {
            task_key(o.record.agent_type, o.record.task_id)
            for o in self.state.observations.values()
            if o.liveness != Liveness.ALIVE
        }

    def respawn_status(
        self, rec: AgentRecord, states: Mapping[str, RespawnState] | None = None
    ) -> tuple[int, bool, float | None]:
        """(respawns so far, given up, next respawn time) for the console. ``states``:
        the ledger rows already read for a whole snapshot (``store.respawn_states``)."""
        tk = task_key(rec.agent_type, rec.task_id)
        if states is not None:
            st = states.get(tk) or RespawnState(tk)
        else:
            try:
                st = self.ctx.store.get_respawn_state(tk)
            except StoreError:
                return 0, False, None
        nxt = (
            st.next_allowed_ts
            if st.next_allowed_ts and st.next_allowed_ts > timeutil.now()
            else None
        )
        return st.attempts, bool(st.given_up), nxt

    def backoff(self, attempts: int) -> float:
        return self.policy.backoff(attempts)


def _task_of(tk: str) -> str | None:
    """The task id in a task key (``task:spec-20``); ``None`` for a per-type key."""
    return tk.split(":", 1)[1] if tk.startswith("task:") else None
