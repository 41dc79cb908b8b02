"""The respawn ledger's bookkeeping: fast exits (flapping), stable runs, given-up tasks."""

from __future__ import annotations

import logging

from ohm_tui.engine import timeutil
from ohm_tui.engine.actions.base import ActionBase
from ohm_tui.engine.context import CheckState, EngineContext
from ohm_tui.engine.fmt import count
from ohm_tui.engine.model import (
    AgentRecord,
    Issue,
    Observation,
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

    def forget_unlisted(self, listed: set[str]) -> None:
        """Runs no longer listed are never observed again: forget that they were counted."""
        self.noted &= listed

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

    def given_up_issues(self) -> list[Issue]:
        issues = []
        for tk in sorted(self._tasks | self._observed_tasks()):
            st = self.ctx.store.get_respawn_state(tk)
            if st.given_up:
                issues.append(
                    Issue(
                        type="agent_crash",
                        severity="degraded",
                        error=f"{tk} given up after {count(st.attempts, 'respawn')}; "
                        "respawn it by hand once fixed",
                        task_id=tk.split(":", 1)[1] if tk.startswith("task:") else None,
                        action_taken="gave up",
                        details={"task_key": tk, "given_up": True},
                    )
                )
        return issues

    def _observed_tasks(self) -> set[str]:
        return {
            task_key(o.record.agent_type, o.record.task_id)
            for o in self.state.observations.values()
            if o.liveness != "alive"
        }

    def respawn_status(self, rec: AgentRecord) -> tuple[int, bool, float | None]:
        """(respawns so far, given up, next respawn time) for the console."""
        try:
            st = self.ctx.store.get_respawn_state(task_key(rec.agent_type, rec.task_id))
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
