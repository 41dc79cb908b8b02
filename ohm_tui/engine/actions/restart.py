"""Level 3: restarting a frozen orchestrator, and verifying that it beats again."""

from __future__ import annotations

import logging
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ohm_tui.engine import timeutil
from ohm_tui.engine.actions.base import ActionBase
from ohm_tui.engine.context import CheckState, EngineContext
from ohm_tui.engine.model import (
    ActionResult,
    HealthReport,
)
from ohm_tui.engine.system import procs, signals

log = logging.getLogger("ohm.fixes")


@dataclass(slots=True)
class RestartAttempt:
    started_ts: float
    deadline: float
    pid: int | None


class OrchestratorRestart(ActionBase):
    """Level 3: restarting a frozen orchestrator, and verifying that it beats again."""

    def __init__(
        self,
        ctx: EngineContext,
        state: CheckState,
        on_restart_failed: Callable[[str], None] = lambda _msg: None,
    ) -> None:
        super().__init__(ctx, state)
        self._on_restart_failed = on_restart_failed
        self.orchestrator_pid: int | None = None
        self._restart: RestartAttempt | None = None

    def note_orchestrator(self, pid: int | None, matched: list[int], loop: Any, now: float) -> None:
        """The orchestrator this check identified; verifies a pending restart."""
        self.orchestrator_pid = (
            pid if pid is not None else (matched[0] if len(matched) == 1 else None)
        )
        if self._restart is not None:
            self._verify_restart(loop, now)

    def maybe_restart(self, report: HealthReport) -> ActionResult | None:
        frozen = [
            i for i in report.issues if i.type == "orchestrator_freeze" and i.severity == "critical"
        ]
        if not frozen or self._restart is not None:
            return None
        argv = self.cfg.orchestrator_restart_command
        if not argv:
            return None
        now = timeutil.now()
        recent = [
            e
            for e in self.ctx.store.list_events(since=now - self.cfg.orchestrator_freeze_threshold)
            if e.kind == "restart_started"
        ]
        if recent:
            return None
        stopped = "no identified orchestrator process"
        pid = self.orchestrator_pid
        if pid is not None:
            raw = procs.read_proc(pid)
            if raw is not None:
                stopped = signals.terminate_verified(
                    pid,
                    create_time=raw.start_time,
                    started_at=None,
                    tolerance=0.5,
                    command=None,
                    grace=self.cfg.restart_grace_period,
                )
        cwd = self.cfg.orchestrator_restart_cwd
        log_file = self.cfg.log_dir_path / f"orchestrator-restart-{int(now)}.log"
        try:
            res = self.ctx.spawner.spawn(
                list(argv),
                cwd=cwd,
                log_file=log_file,
                exits_dir=self.cfg.path("ohm/exits-orchestrator"),
                env=None,
                meta={"role": "orchestrator"},
            )
        except OSError as exc:
            msg = f"orchestrator restart failed to start {shlex.join(argv)}: {exc}"
            self.ctx.emit("restart_failed", msg[:500])
            self.ctx.notifier.alert("critical", msg)
            self._on_restart_failed(msg)
            return ActionResult(False, "restart", msg)
        self._restart = RestartAttempt(now, now + self.cfg.restart_verify_timeout, res.pid)
        msg = f"restarting orchestrator (old: {stopped}); new pid {res.pid}, log {log_file}"
        self.ctx.emit("restart_started", msg, agent_pid=res.pid)
        return ActionResult(True, "restart", msg, new_pid=res.pid)

    def _verify_restart(self, loop: Any, now: float) -> None:
        r = self._restart
        if r is None:
            return
        if loop is not None and loop.last_update is not None and loop.last_update > r.started_ts:
            self._restart = None
            self.ctx.emit(
                "restarted",
                f"orchestrator restarted: fresh heartbeat {now - r.started_ts:.1f} s after restart",
                agent_pid=r.pid,
            )
        elif now > r.deadline:
            self._restart = None
            msg = (
                f"orchestrator restart not verified: no fresh heartbeat within "
                f"{int(self.cfg.restart_verify_timeout)} s"
            )
            self.ctx.emit("restart_failed", msg, agent_pid=r.pid)
            self.ctx.notifier.alert("critical", msg)
            self._on_restart_failed(msg)

    @property
    def restart_pending(self) -> bool:
        return self._restart is not None
