"""Respawning crashed agents: claim, ask the policy, start through the runner, record."""

from __future__ import annotations

import logging
import os
import shlex
import time
from collections.abc import Mapping

from ohm_tui.engine import timeutil
from ohm_tui.engine.actions.base import RESPAWNS_PER_PASS, WRITE_BACK_SOURCES, ActionBase
from ohm_tui.engine.actions.ledger import RespawnLedger
from ohm_tui.engine.actions.policy import Decision
from ohm_tui.engine.actions.recovery import Recovery
from ohm_tui.engine.actions.writeback import WriteBack
from ohm_tui.engine.config import check_file_trust
from ohm_tui.engine.context import CheckState, EngineContext
from ohm_tui.engine.fmt import count
from ohm_tui.engine.model import (
    FIX_STATE_OF,
    ActionResult,
    AgentRecord,
    CrashRow,
    FixState,
    Lifecycle,
    agent_key,
    ended_state,
    slug,
    task_key,
)
from ohm_tui.engine.sources.sessions import NOT_RESPAWNED
from ohm_tui.engine.store import RespawnState, StoreError

log = logging.getLogger("ohm.fixes")


class Respawner(ActionBase):
    """Respawning crashed agents: claim, ask the policy, start through the runner, record."""

    def __init__(
        self,
        ctx: EngineContext,
        state: CheckState,
        ledger: RespawnLedger,
        recovery: Recovery,
        writeback: WriteBack,
    ) -> None:
        super().__init__(ctx, state)
        self.ledger = ledger
        self.recovery = recovery
        self.writeback = writeback
        self._next_due: float | None = None  # monotonic: a wall-clock jump moves no backoff
        # crash id -> monotonic end of its backoff, fixed at the first look at it
        self._due_mono: dict[int, float] = {}

    def handle_pending(self, only: int | None = None) -> list[ActionResult]:
        """Act on pending crashes (or just ``only``, from the death path).

        At most ``RESPAWNS_PER_PASS`` respawns per pass, the rest right after the
        next check: in a crash storm one pass must not hold the monitor (and so
        every check, snapshot and console refresh) for seconds.
        """
        results: list[ActionResult] = []
        store = self.ctx.store
        now = timeutil.now()
        if only is None:
            self._next_due = None  # a single crash must not forget the others' backoff
        self.recovery.release_dead_claims()
        store.release_stale_claims(now - max(60.0, 2 * self.cfg.health_check_interval))
        if only is not None:
            one = store.get_crash(only)
            pending = [one] if one is not None and one.fix_state == FixState.PENDING else []
        else:
            pending = store.pending_crashes()
            ids = {c.crash_id for c in pending}
            self._due_mono = {k: v for k, v in self._due_mono.items() if k in ids}
        started = 0
        for crash in sorted(pending, key=lambda c: c.crashed_at):
            if started >= RESPAWNS_PER_PASS:
                mono = time.monotonic()
                self._next_due = mono if self._next_due is None else min(self._next_due, mono)
                break
            res = self._handle_crash(crash, now)
            if res is not None:
                results.append(res)
                if res.action == "respawn":
                    started += 1
        return results

    def _handle_crash(self, crash: CrashRow, now: float) -> ActionResult | None:
        store = self.ctx.store
        tk = task_key(crash.agent_type, crash.task_id)
        self.ledger.note_task(tk)
        if not store.claim_crash(crash.crash_id, self.ctx.holder):
            return None
        st = store.get_respawn_state(tk)
        rec = self.record_from_crash(crash)
        recovered = self.recovery.finish_interrupted(crash, st)
        if recovered is not None:
            return recovered
        verdict = self.policy.decide(st, crash.crashed_at, now)
        if verdict.decision is Decision.GAVE_UP:
            store.finish_crash(
                crash.crash_id, action_taken="not respawned: gave up earlier", respawned=False
            )
            return None
        if verdict.decision is Decision.GIVE_UP:
            return self._give_up(crash, st, rec, verdict.why)
        other = self.other_live_run(rec)
        if other is not None:  # respawned by hand, or by the orchestrator: never two copies
            store.finish_crash(
                crash.crash_id,
                action_taken=f"not respawned: task runs again as pid {other.pid}",
                respawned=False,
            )
            return None
        # The backoff is an interval: timed by the monotonic clock from the first look
        # (wall time only says how much was left then), so a wall-clock jump neither
        # freezes it for an hour nor ends it at once.
        left = crash.crashed_at + self.policy.backoff(st.attempts) - now
        waiting = crash.crash_id in self._due_mono  # already RESPAWNING (this process saw it)
        due_mono = self._due_mono.setdefault(crash.crash_id, time.monotonic() + left)
        wait = due_mono - time.monotonic()
        if wait > 0:
            st.next_allowed_ts = now + wait
            store.save_respawn_state(st)
            store.finish_crash(
                crash.crash_id,
                action_taken=f"respawning in {wait:.0f}s",
                fix_state=FIX_STATE_OF[Lifecycle.RESPAWNING],
            )
            if not waiting:
                self.move(Lifecycle.CRASHED, Lifecycle.RESPAWNING, "", agent_key=rec.key)
            self._next_due = due_mono if self._next_due is None else min(self._next_due, due_mono)
            return None
        self._due_mono.pop(crash.crash_id, None)
        return self._respawn(rec, crash=crash, st=st, manual=False, waited=waiting)

    def _phase(self, crash: CrashRow) -> Lifecycle:
        """A pending crash's run: waiting out its backoff (seen so here), or just crashed."""
        return Lifecycle.RESPAWNING if crash.crash_id in self._due_mono else Lifecycle.CRASHED

    def _give_up(
        self, crash: CrashRow, st: RespawnState, rec: AgentRecord, why: str
    ) -> ActionResult:
        store = self.ctx.store
        st.given_up = True
        st.given_up_ts = timeutil.now()
        st.next_allowed_ts = None
        store.save_respawn_state(st)
        tries = count(st.attempts, "respawn")
        msg = f"gave up on {rec.agent_type} {rec.task_id or ''} after {tries}: {why}"
        store.finish_crash(crash.crash_id, action_taken="gave up", respawned=False)
        self.move(
            self._phase(crash),
            Lifecycle.GIVEN_UP,
            msg.strip(),
            agent_key=rec.key,
            agent_pid=rec.pid,
            agent_type=rec.agent_type,
            task_id=rec.task_id,
            crash_id=crash.crash_id,
        )
        self.ctx.notifier.alert("warning", msg)
        return ActionResult(False, "give_up", msg, agent_key=rec.key)

    def _trust_source(self, rec: AgentRecord) -> None:
        if rec.source in ("real", "ohm") and not self.cfg.allow_insecure_files:
            check_file_trust(self.cfg.agent_state_path, "state file")
        if rec.source == "lifecycle" and not self.cfg.allow_insecure_files:
            check_file_trust(self.cfg.database_path, "database")  # it names the command

    def respawn_cwd(self, rec: AgentRecord) -> tuple[str | None, str]:
        """Where a respawn of ``rec`` runs, and where that came from.

        The entry's own ``cwd`` or ``worktree_path``; else the directory the
        process itself ran in (read while it was alive); else the orchestrator's.
        Never ohm's own: an agent run from ohm's directory imports another copy of
        the code (the demo's ImportError got two fingerprints that way).
        """
        if rec.cwd:
            return rec.cwd, "its entry"
        if rec.worktree_path:
            return rec.worktree_path, "its worktree_path"
        seen = self.ctx.process_cwd(rec.key)
        if seen:
            return seen, "where it ran"
        orch = self.ctx.orchestrator_cwd()
        if orch:
            return orch, "the orchestrator's directory"
        return (
            None,
            "no working directory known (none in its entry, not seen alive, no orchestrator)",
        )

    def _respawn(
        self,
        rec: AgentRecord,
        *,
        crash: CrashRow | None,
        st: RespawnState,
        manual: bool,
        restarted: bool = False,
        waited: bool = False,
    ) -> ActionResult:
        store = self.ctx.store
        now = timeutil.now()
        crash_id = crash.crash_id if crash else None
        attempt = st.attempts + 1
        # Where this run's lifecycle stands: a crash being handled (maybe after its
        # backoff), a run just killed for a restart, a task given up on, or a run that
        # ended otherwise (as its source says).
        before = (
            (Lifecycle.RESPAWNING if waited else Lifecycle.CRASHED)
            if crash is not None
            else Lifecycle.KILLED
            if restarted
            else Lifecycle.GIVEN_UP
            if st.given_up
            else ended_state(rec.status, rec.exit_code)
        )
        label = (
            "restart"
            if restarted
            else "manual respawn"
            if manual
            else f"respawn {attempt}/{self.cfg.max_respawn_attempts}"
        )
        try:
            if rec.source == "session":
                raise ValueError(NOT_RESPAWNED)
            if not rec.command:
                raise ValueError("no command known for this agent")
            cwd, why = self.respawn_cwd(rec)
            if cwd is None:
                raise ValueError(why)
            if not os.path.isdir(cwd):  # said plainly: a removed worktree is common
                raise ValueError(f"working directory does not exist: {cwd}")
            self._trust_source(rec)
            new = self.spawn(
                rec.command,
                agent_type=rec.agent_type,
                task_id=rec.task_id,
                cwd=cwd,
                env=None,
                respawn_of=rec,
            )
        except (OSError, ValueError, StoreError) as exc:
            msg = f"{label} of {rec.agent_type} {rec.task_id or ''} failed: {exc}"
            st.attempts = attempt if not manual else st.attempts
            st.last_attempt_ts = now
            store.save_respawn_state(st)
            store.add_respawn(
                task_key=st.task_key,
                crash_id=crash_id,
                old_key=rec.key,
                new_key=None,
                ok=False,
                message=msg,
                ts=now,
            )
            if crash is not None:
                store.finish_crash(crash.crash_id, action_taken=f"{label} failed", respawned=False)
            self.move(
                before,
                Lifecycle.RESPAWN_FAILED,
                msg[:500],
                agent_key=rec.key,
                agent_pid=rec.pid,
                agent_type=rec.agent_type,
                task_id=rec.task_id,
                crash_id=crash_id,
            )
            # Nothing runs this task now: say so loudly (the check keeps it visible).
            self.ctx.notifier.alert("warning", msg)
            return ActionResult(False, "respawn", msg, agent_key=rec.key)
        st.attempts = 0 if manual else attempt
        if manual:
            st.given_up = False
            st.recent_fast_exits = []
        st.last_attempt_ts = now
        st.next_allowed_ts = None
        st.last_start_ts = now
        action = (
            "restarted by operator"
            if restarted
            else "respawned by hand"
            if manual
            else f"respawned {attempt}/{self.cfg.max_respawn_attempts}"
        )
        # One transaction: a kill between these rows would leave the count and the
        # record of this respawn disagreeing (see _finish_interrupted).
        with store.transaction():
            store.save_respawn_state(st)
            store.add_respawn(
                task_key=st.task_key,
                crash_id=crash_id,
                old_key=rec.key,
                new_key=new.key,
                ok=True,
                message=label,
                ts=now,
            )
            if crash is not None:
                store.finish_crash(crash.crash_id, action_taken=action, respawned=True)
        msg = f"{action}: {rec.agent_type} {rec.task_id or ''} as pid {new.pid} (was {rec.pid})"
        self.move(
            before,
            Lifecycle.RUNNING,
            msg,
            agent_key=new.key,
            agent_pid=new.pid,
            agent_type=rec.agent_type,
            task_id=rec.task_id,
            crash_id=crash_id,
            data={"old_key": rec.key},
        )
        if rec.source in WRITE_BACK_SOURCES:
            self.writeback.write_back(rec, new, restarted=restarted)
        return ActionResult(True, "respawn", msg, agent_key=new.key, new_pid=new.pid)

    def manual_respawn(self, rec: AgentRecord, *, restarted: bool = False) -> ActionResult:
        """Respawn by hand (the monitor's lock held). ``restarted``: the old run was
        just stopped by ``restart``. A run that is alive is never started twice."""
        if rec.source == "session":
            # Refused, not failed: no respawn was possible, so none is counted (the
            # respawn rate stays n/a) and nothing is reported as a failed respawn.
            return ActionResult(False, "respawn", NOT_RESPAWNED, agent_key=rec.key)
        if self.is_running(rec):
            return ActionResult(
                False,
                "respawn",
                f"not respawned: {rec.agent_type} pid {rec.pid} is still running "
                "(a respawn of a live agent is a restart: stop it first)",
                agent_key=rec.key,
            )
        other = self.other_live_run(rec)
        if other is not None:
            return ActionResult(
                False,
                "respawn",
                f"not respawned: task {rec.task_id} already runs as {other.agent_type} "
                f"pid {other.pid}; restart that one instead",
                agent_key=rec.key,
            )
        st = self.ctx.store.get_respawn_state(task_key(rec.agent_type, rec.task_id))
        crash = self.ctx.store.crash_by_key(rec.key)
        if crash is not None and not self.ctx.store.claim_crash(crash.crash_id, self.ctx.holder):
            crash = None  # already handled: still respawn (the operator asked), do not touch it
        return self._respawn(rec, crash=crash, st=st, manual=True, restarted=restarted)

    def spawn(
        self,
        argv: list[str],
        *,
        agent_type: str,
        task_id: str | None,
        cwd: str | None,
        env: Mapping[str, str] | None,
        respawn_of: AgentRecord | None,
    ) -> AgentRecord:
        """Start an agent through the runner wrapper and record it in ohm_agents."""
        now = timeutil.now()
        log_file = self.cfg.log_dir_path / (
            f"{slug(agent_type)}-{slug(task_id, 'none')}-{int(now * 1000)}.log"
        )
        res = self.ctx.spawner.spawn(
            list(argv),
            cwd=cwd,
            log_file=log_file,
            exits_dir=self.cfg.exits_dir_path,
            env=env,
            meta={
                "agent_type": agent_type,
                "task_id": task_id,
                "respawn_of": respawn_of.key if respawn_of else None,
            },
        )
        key = agent_key(res.pid, res.create_time)
        rec = AgentRecord(
            key=key,
            pid=res.pid,
            agent_type=agent_type,
            task_id=task_id,
            source="ohm_spawned",
            command=list(argv),
            command_text=shlex.join(argv),
            cwd=res.cwd,  # where it really runs: its own respawns run there too
            log_file=str(log_file),
            started_at=res.create_time,
            status="running",
            create_time=res.create_time,
        )
        self.ctx.store.add_ohm_agent(
            agent_key=key,
            pid=res.pid,
            create_time=res.create_time,
            agent_type=agent_type,
            task_id=task_id,
            argv=list(argv),
            command_text=rec.command_text,
            cwd=res.cwd,
            log_file=str(log_file),
            source_file=str(self.cfg.agent_state_path)
            if respawn_of and respawn_of.source != "ohm_spawned"
            else None,
            respawn_of=respawn_of.key if respawn_of else None,
            started_ts=res.create_time,
        )
        if respawn_of is None:
            self.ctx.emit(
                "spawned",
                f"started {agent_type} {task_id or ''} as pid {res.pid}",
                agent_key=key,
                agent_pid=res.pid,
                agent_type=agent_type,
                task_id=task_id,
            )
        return rec

    def respawn_due_in(self) -> float | None:
        """Seconds until a pending respawn's backoff ends (0: due now; None: none waits)."""
        if self._next_due is None:
            return None
        return max(0.0, self._next_due - time.monotonic())
