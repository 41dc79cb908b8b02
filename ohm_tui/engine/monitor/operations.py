"""What an operator does: respawn, stop, clean, file and triage bugs, acknowledge.

``Operations`` holds the check engine (to act on what it saw) and the read model (to
find agents and show them); never the façade.
"""

from __future__ import annotations

import logging
import os
import shlex
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ohm_tui.engine import timeutil
from ohm_tui.engine.bugs.tracker import BugTracker
from ohm_tui.engine.config import Config
from ohm_tui.engine.detect import acks
from ohm_tui.engine.fmt import count
from ohm_tui.engine.model import (
    Ack,
    ActionResult,
    AgentView,
    BugRow,
    EventKind,
    RespawnPlan,
    parse_bug_number,
)
from ohm_tui.engine.monitor.base import _operator
from ohm_tui.engine.monitor.checkengine import CheckEngine
from ohm_tui.engine.monitor.errors import UnknownBugError, UnknownIssueError, refuse_session
from ohm_tui.engine.monitor.views import ReadModel

log = logging.getLogger("ohm.monitor")


class Operations:
    """What an operator does: respawn, stop, clean, file and triage bugs, acknowledge."""

    def __init__(
        self, check: CheckEngine, views: ReadModel, lock: threading.RLock, config: Config
    ) -> None:
        self._check = check
        self._views = views
        self._lock = lock
        self.config = config

    def spawn_agent(
        self,
        command: Sequence[str] | str,
        *,
        agent_type: str,
        task_id: str | None = None,
        cwd: str | os.PathLike[str] | None = None,
        env: Mapping[str, str] | None = None,
    ) -> AgentView:
        """Start an agent under ohm's care: output to a log file, exit code always captured."""
        self._check.require_writable("spawn")
        argv = shlex.split(command) if isinstance(command, str) else list(command)
        with self._lock:
            rec = self._check.fixer.spawn(
                argv,
                agent_type=agent_type,
                task_id=task_id,
                cwd=os.fspath(cwd) if cwd is not None else None,
                env=env,
                respawn_of=None,
            )
            return self._views.agent_view(self._check.adopt(rec))

    def describe_respawn(self, agent: str | int) -> str:
        """Exactly what ``respawn`` would do, for confirmation prompts and ``--dry-run``.

        For a live agent that is two steps: stop it, then run the command.
        """
        return self.respawn_plan(agent).text

    def respawn_plan(self, agent: str | int) -> RespawnPlan:
        """``describe_respawn`` with whether it is a restart (the console's dialog says so)."""
        with self._lock:
            rec = self._views.resolve_agent(agent)
            refuse_session(rec, "respawn")
            cwd, why = self._check.fixer.respawn_cwd(rec)
            running = self._check.fixer.is_running(rec)
        cmd = shlex.join(rec.command) if rec.command else rec.command_text
        where = f"(in {cwd})" if cwd else f"(cannot run: {why})"
        run = f"{cmd}  {where}"
        if not running:
            return RespawnPlan(False, run)
        grace = self.config.stop_grace_period
        return RespawnPlan(
            True,
            f"{rec.agent_type} PID {rec.pid} is running: it will be stopped first.\n"
            f"1. stop PID {rec.pid}: SIGTERM (its process group too, if it leads one), "
            f"then SIGKILL after {grace:g}s; nothing starts unless it is gone\n"
            f"2. run: {run}",
        )

    def respawn(self, agent: str | int) -> ActionResult:
        """Manual respawn: runs even for a given-up agent, and resets its count.

        A live agent is restarted: stopped first (identity-checked), and the new
        run starts only once the old one is gone. Never two copies.
        """
        self._check.require_writable("respawn")
        with self._lock:
            rec = self._views.resolve_agent(agent)
            refuse_session(rec, "respawn")
            running = self._check.fixer.is_running(rec)
            if not running:
                result = self._check.fixer.manual_respawn(rec)
        if running:  # outside the lock: the stop waits a grace period
            result = self._check.fixer.restart(rec)
        if result.ok and result.agent_key:
            with self._lock:  # watched (and counted as the task's live run) at once
                self._check.adopt_spawned(result.agent_key)
        self._check.deliver_events()
        self._check.wake()
        return result

    def stop_agent(self, agent: str | int) -> ActionResult:
        self._check.require_writable("stop")
        with self._lock:
            rec = self._views.resolve_agent(agent)
            refuse_session(rec, "stop")
        result = self._check.fixer.stop(rec)  # outside the lock: it waits for a grace period
        self._check.deliver_events()
        self._check.wake()
        return result

    def plan_zombie_cleanup(self) -> list[str]:
        with self._lock:
            self._check.check()
            return self._check.fixer.plan_cleanup(list(self._check.observations.values()))

    def clean_zombies(self, dry_run: bool = False) -> ActionResult:
        with self._lock:
            self._check.check()
            if dry_run:
                plan = self._check.fixer.plan_cleanup(list(self._check.observations.values()))
                return ActionResult(
                    True,
                    "clean_zombies",
                    f"{count(len(plan), 'item')} would be cleaned",
                    details={"plan": plan},
                )
            self._check.require_writable("clean zombies")
            result = self._check.fixer.clean(list(self._check.observations.values()))
            self._check.deliver_events()
            return result

    def file_bug(
        self,
        title: str,
        priority: str,
        description: str = "",
        *,
        assigned_to: str | None = None,
        category: str = "manual",
        related: Mapping[str, Any] | None = None,
    ) -> BugRow:
        self._check.require_writable("file bug")
        with self._lock:
            row = self._check.tracker.file_manual(
                title=title,
                priority=priority,
                description=description,
                assigned_to=assigned_to,
                category=category,
                related=dict(related) if related else None,
            )
            self._check.deliver_events()
            return row

    def _bug_op(self, number: int | str, op: Callable[[BugTracker, int], BugRow]) -> BugRow:
        n = parse_bug_number(number)
        with self._lock:
            try:
                row = op(self._check.tracker, n)
            except KeyError:
                raise UnknownBugError(f"unknown bug BUG-{n:03d}") from None
            self._check.deliver_events()
            return row

    def close_bug(self, number: int | str) -> BugRow:
        self._check.require_writable("close bug")
        return self._bug_op(number, lambda t, n: t.close(n))

    def reopen_bug(self, number: int | str) -> BugRow:
        self._check.require_writable("reopen bug")
        return self._bug_op(number, lambda t, n: t.reopen(n))

    def set_bug_priority(self, number: int | str, priority: str) -> BugRow:
        self._check.require_writable("change bug priority")
        return self._bug_op(number, lambda t, n: t.set_priority(n, priority))

    def acknowledge(
        self, issue: str, *, by: str | None = None, for_seconds: float | None = None
    ) -> Ack:
        """Acknowledge a current issue (``issue_id`` such as ``agent_crash:task:spec-20``,
        or a type / task that names one issue): its alerts and colour stop until it
        changes, goes away, or ``for_seconds`` pass. Raises ``UnknownIssueError``."""
        self._check.require_writable("acknowledge")
        if for_seconds is not None and not for_seconds > 0:
            raise ValueError(f"an acknowledgement lasts more than 0 seconds, not {for_seconds}")
        with self._lock:
            report = self._check.check()
            try:
                found = acks.resolve(issue, report.issues)
            except KeyError as exc:
                raise UnknownIssueError(exc.args[0]) from None
            first = found[0]
            measure = acks.Measure.of(found)
            now = timeutil.now()
            ack = self._check.store.add_ack(
                issue_id=first.issue_id or acks.issue_id(first),
                issue_type=str(first.type),
                by=by or _operator(),
                until=None if for_seconds is None else now + for_seconds,
                severity=measure.severity,
                count=measure.count,
                crash_id=measure.crash_id,
                error=first.error,
                now=now,
            )
            until = "until it changes" if ack.until is None else f"for {int(for_seconds or 0)} s"
            self._check.event(
                EventKind.ACKNOWLEDGED,
                f"{ack.by} acknowledged {ack.issue_id} {until}",
                agent_type=first.agent_type,
                task_id=first.task_id,
                data={"ack_id": ack.ack_id, "issue_id": ack.issue_id, "until": ack.until},
            )
            self._check.check()  # the status without it, for the faces at once
            return ack

    def unacknowledge(self, issue: str, *, by: str | None = None) -> list[Ack]:
        """Take back the open acks of ``issue`` (an ``issue_id``, a type or task that
        names one, or an ack number). Raises ``UnknownIssueError`` when none is open."""
        self._check.require_writable("unacknowledge")
        with self._lock:
            ref = issue.strip()
            candidates = [a for a, _ in self._check.store.open_acks()]
            chosen = [a for a in candidates if ref in (a.issue_id, str(a.ack_id), f"#{a.ack_id}")]
            if not chosen:
                chosen = [
                    a for a in candidates if ref == a.issue_type or a.issue_id.endswith(f":{ref}")
                ]
            if not chosen:
                known = ", ".join(a.issue_id for a in candidates) or "none"
                raise UnknownIssueError(f"no open acknowledgement of {ref!r} (open: {known})")
            who = by or _operator()
            ended = [
                a for a in chosen if self._check.store.end_ack(a.ack_id, f"taken back by {who}")
            ]
            for a in ended:
                self._check.event(
                    EventKind.UNACKNOWLEDGED,
                    f"{who} took back the acknowledgement of {a.issue_id}",
                    data={"ack_id": a.ack_id, "issue_id": a.issue_id},
                )
            self._check.check()
            return ended

    def list_acks(self, *, include_ended: bool = False, limit: int = 100) -> list[Ack]:
        """Open acknowledgements (expired ones end at the next check), or the history."""
        if include_ended:
            return self._check.store.list_acks(limit=limit)
        return [a for a, _ in self._check.store.open_acks()]

    def simulate_crash(
        self, agent_type: str, error: str = "ImportError", task_id: str | None = None
    ) -> AgentView:
        """Start a real agent that really crashes with ``error``, under ohm's care."""
        from ohm_tui.engine.simulate import crash_command

        argv, cwd = crash_command(agent_type, error, self.config.path("ohm/simulate"))
        view = self.spawn_agent(
            argv, agent_type=agent_type, task_id=task_id or f"sim-{agent_type}", cwd=cwd
        )
        self._check.event(
            "simulated",
            f"simulated {error} crash of {agent_type} as pid {view.pid}",
            agent_key=view.key,
            agent_pid=view.pid,
            agent_type=agent_type,
            task_id=view.task_id,
        )
        return view
