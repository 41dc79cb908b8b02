"""Fixes: respawn crashed agents, clean stale entries, restart a frozen loop.

Each fix acts on what a check found and is idempotent: a crash is *claimed* in
the database before it is acted on, so two monitors (or two calls) can never
respawn the same crash twice. ``Fixer`` is the façade the monitor calls; each
action is its own object over an ``EngineContext`` and the ``CheckState``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from ohm_tui.engine.actions.cleanup import Cleanup
from ohm_tui.engine.actions.ledger import RespawnLedger
from ohm_tui.engine.actions.recovery import Recovery
from ohm_tui.engine.actions.respawn import Respawner
from ohm_tui.engine.actions.restart import OrchestratorRestart
from ohm_tui.engine.actions.stop import Stopper
from ohm_tui.engine.actions.writeback import WriteBack
from ohm_tui.engine.context import CheckState, EngineContext
from ohm_tui.engine.model import ActionResult, AgentRecord, HealthReport

log = logging.getLogger("ohm.fixes")


class Fixer:
    """All actions that change processes or files. Called with the monitor's lock held
    (except ``stop`` and ``restart``, which wait out a grace period)."""

    def __init__(
        self,
        ctx: EngineContext,
        state: CheckState,
        on_restart_failed: Callable[[str], None] = lambda _msg: None,
    ) -> None:
        self.spawner = ctx.spawner
        self.ledger = RespawnLedger(ctx, state)
        self.writeback = WriteBack(ctx, state)
        self.recovery = Recovery(ctx, state, self.writeback)
        self.respawner = Respawner(ctx, state, self.ledger, self.recovery, self.writeback)
        self.stopper = Stopper(ctx, state)
        self.cleanup = Cleanup(ctx, state)
        self.orchestrator = OrchestratorRestart(ctx, state, on_restart_failed)
        # What the monitor calls, one name each (the same names as before the split).
        self.note_exit = self.ledger.note_exit
        self.note_completed = self.ledger.note_completed
        self.flapping_issues = self.ledger.flapping_issues
        self.given_up_issues = self.ledger.given_up_issues
        self.given_up_views = self.ledger.given_up_views
        self.respawn_status = self.ledger.respawn_status
        self.handle_pending = self.respawner.handle_pending
        self.manual_respawn = self.respawner.manual_respawn
        self.respawn_cwd = self.respawner.respawn_cwd
        self.respawn_due_in = self.respawner.respawn_due_in
        self.spawn = self.respawner.spawn
        self.is_running = self.respawner.is_running
        self.record_from_crash = self.respawner.record_from_crash
        self.stop = self.stopper.stop
        self.plan_cleanup = self.cleanup.plan_cleanup
        self.clean = self.cleanup.clean
        self.note_orchestrator = self.orchestrator.note_orchestrator

    @property
    def restart_pending(self) -> bool:
        return self.orchestrator.restart_pending

    @property
    def orchestrator_pid(self) -> int | None:
        return self.orchestrator.orchestrator_pid

    def forget_unlisted(self, listed: set[str]) -> None:
        """Per-run state only for the runs listed now."""
        self.ledger.forget_unlisted(listed)

    def skip_exit(self, key: str) -> None:
        """This run's end is not a fast exit (stopped on purpose): never count it."""
        self.ledger.noted.add(key)

    def run(self, report: HealthReport) -> list[ActionResult]:
        results = self.handle_pending()
        observations = list(self.cleanup.state.observations.values())
        if self.cleanup.stale(observations):
            results.append(self.clean(observations))
        for pid, code in self.spawner.reap_children():
            log.debug("reaped child %s (%s)", pid, code)
        restart = self.orchestrator.maybe_restart(report)
        if restart is not None:
            results.append(restart)
        return results

    def restart(self, rec: AgentRecord) -> ActionResult:
        """Respawn of a live agent: stop it (identity-checked), and only once it is
        gone start the new run. If it will not die, nothing is started.

        Called WITHOUT the monitor's lock (the stop waits out a grace period).
        """
        stopped = self.stop(rec, restart=True)
        if not stopped.ok:
            return ActionResult(
                False,
                "respawn",
                f"not restarted: {stopped.message}; nothing was started",
                agent_key=rec.key,
            )
        with self.respawner.ctx.lock:
            return self.manual_respawn(rec, restarted=True)
