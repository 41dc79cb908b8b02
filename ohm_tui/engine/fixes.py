"""Fixes: respawn crashed agents, clean stale entries, restart a frozen loop.

Each fix acts on what a check found and is idempotent: a crash is *claimed* in
the database before it is acted on, so two monitors (or two calls) can never
respawn the same crash twice.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import shlex
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ohm_tui.engine import procs, statefile, timeutil
from ohm_tui.engine.config import Config, check_file_trust
from ohm_tui.engine.detect import Observation
from ohm_tui.engine.fmt import count
from ohm_tui.engine.models import (
    ActionResult,
    AgentRecord,
    CrashRow,
    EventKind,
    HealthReport,
    Issue,
)
from ohm_tui.engine.sources.base import SourceWriteError
from ohm_tui.engine.sources.sessions import NOT_RESPAWNED
from ohm_tui.engine.store import RespawnState, StoreError

if TYPE_CHECKING:
    from ohm_tui.engine.monitor import OrchestratorHealthMonitor

log = logging.getLogger("ohm.fixes")

_SLUG = re.compile(r"[^A-Za-z0-9_.-]+")
RESPAWNS_PER_PASS = 8
# Sources a respawn is written back into: agent_state.json and agent_lifecycle.
WRITE_BACK_SOURCES = ("real", "ohm", "lifecycle")
STALE_SOURCES = ("real", "ohm", "lifecycle", "session")  # sources ohm moves stale entries in


def task_key(agent_type: str | None, task_id: str | None) -> str:
    """Respawn limits count per task; an agent without a task counts per type."""
    return f"task:{task_id}" if task_id else f"type:{agent_type or 'agent'}"


def slug(text: str | None, default: str = "agent") -> str:
    """A file-name-safe piece (task ids like ``../../etc/x`` stay inside their folder)."""
    s = _SLUG.sub("_", text or "").strip("._")[:60]
    return s or default


@dataclass(slots=True)
class RestartAttempt:
    started_ts: float
    deadline: float
    pid: int | None


class Fixer:
    """All actions that change processes or files. Called with the monitor's lock held."""

    def __init__(self, monitor: OrchestratorHealthMonitor) -> None:
        self.m = monitor
        self._noted: set[str] = set()
        self._tasks: set[str] = set()
        self._orch_pid: int | None = None
        self._restart: RestartAttempt | None = None
        self._next_due: float | None = None  # monotonic: a wall-clock jump moves no backoff
        # crash id -> monotonic end of its backoff, fixed at the first look at it
        self._due_mono: dict[int, float] = {}
        # crash id -> when a monitor that died mid-fix had claimed it
        self._interrupted: dict[int, float] = {}

    @property
    def cfg(self) -> Config:
        return self.m.config

    # ------------------------------------------------------------ bookkeeping
    def note_exit(self, rec: AgentRecord, obs: Observation, now: float) -> None:
        """Count fast clean exits (flapping) and reset the respawn count after a stable run.

        Crashes have their own limit (``max_respawn_attempts``); flapping is the
        agent that exits 0 moments after every start, which no crash counter sees.
        """
        if rec.key in self._noted:
            return
        self._noted.add(rec.key)
        tk = task_key(rec.agent_type, rec.task_id)
        self._tasks.add(tk)
        if rec.started_at is None:
            return
        runtime = (obs.died_at or now) - rec.started_at
        try:
            st = self.m.store.get_respawn_state(tk)
            changed = False
            if runtime < self.cfg.flap_min_runtime and not obs.is_crash:
                recent = [t for t in st.recent_fast_exits if now - t <= self.cfg.flap_window]
                st.recent_fast_exits = [*recent, now][-50:]
                changed = True
            elif runtime >= self.cfg.respawn_stable_after and st.attempts and not st.given_up:
                st.attempts = 0
                changed = True
            if changed:
                self.m.store.save_respawn_state(st)
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
                st = self.m.store.get_respawn_state(tk)
                known = {round(t, 3) for t in st.recent_fast_exits}
                new = [t for t in times if t not in known]
                if not new:
                    continue
                kept = [t for t in st.recent_fast_exits if now - t <= self.cfg.flap_window]
                st.recent_fast_exits = sorted(kept + new)[-50:]
                self.m.store.save_respawn_state(st)
            except StoreError as exc:
                log.warning("could not count fast exits of %s: %s", tk, exc)

    def note_orchestrator(self, pid: int | None, matched: list[int], loop: Any, now: float) -> None:
        self._orch_pid = pid if pid is not None else (matched[0] if len(matched) == 1 else None)
        if self._restart is not None:
            self._verify_restart(loop, now)

    def retain(self, listed: set[str], now: float) -> None:
        """Forget runs no longer listed, and tasks with nothing left to say (not listed,
        not given up, not flapping): both grow with every run. The store keeps their
        counts; a task listed again is read from it."""
        self._noted &= listed
        keep = self._observed_tasks()
        for tk in self._tasks - keep:
            try:
                st = self.m.store.get_respawn_state(tk)
            except StoreError:
                keep.add(tk)  # unknown: keep it, never drop a given-up task
                continue
            if st.given_up or self.is_flapping(st, now):
                keep.add(tk)
        self._tasks &= keep

    def is_flapping(self, st: RespawnState, now: float) -> bool:
        recent = [t for t in st.recent_fast_exits if now - t <= self.cfg.flap_window]
        return len(recent) >= self.cfg.flap_threshold

    def flapping_issues(self, now: float) -> list[Issue]:
        issues = []
        for tk in sorted(self._tasks | self._observed_tasks()):
            st = self.m.store.get_respawn_state(tk)
            if self.is_flapping(st, now):
                n = len([t for t in st.recent_fast_exits if now - t <= self.cfg.flap_window])
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
            st = self.m.store.get_respawn_state(tk)
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
            for o in self.m._observations.values()
            if o.liveness != "alive"
        }

    def respawn_status(self, rec: AgentRecord) -> tuple[int, bool, float | None]:
        """(respawns so far, given up, next respawn time) for the console."""
        try:
            st = self.m.store.get_respawn_state(task_key(rec.agent_type, rec.task_id))
        except StoreError:
            return 0, False, None
        nxt = (
            st.next_allowed_ts
            if st.next_allowed_ts and st.next_allowed_ts > timeutil.now()
            else None
        )
        return st.attempts, bool(st.given_up), nxt

    def next_due_in(self) -> float | None:
        if self._restart is not None:
            return 1.0
        return self.respawn_due_in()

    def respawn_due_in(self) -> float | None:
        """Seconds until a pending respawn's backoff ends (0: due now; None: none waits)."""
        if self._next_due is None:
            return None
        return max(0.0, self._next_due - time.monotonic())

    # ------------------------------------------------------------ respawn
    def backoff(self, attempts: int) -> float:
        if attempts <= 0:
            return 0.0
        return float(
            self.cfg.respawn_backoff_base * self.cfg.respawn_backoff_factor ** (attempts - 1)
        )

    def run(self, report: HealthReport) -> list[ActionResult]:
        results = self.handle_pending()
        if self._stale(list(self.m._observations.values())):
            results.append(self.clean(list(self.m._observations.values())))
        for pid, code in procs.reap_children():
            log.debug("reaped child %s (%s)", pid, code)
        restart = self._maybe_restart(report)
        if restart is not None:
            results.append(restart)
        return results

    def handle_pending(self, only: int | None = None) -> list[ActionResult]:
        """Act on pending crashes (or just ``only``, from the death path).

        At most ``RESPAWNS_PER_PASS`` respawns per pass, the rest right after the
        next check: in a crash storm one pass must not hold the monitor (and so
        every check, snapshot and console refresh) for seconds.
        """
        results: list[ActionResult] = []
        store = self.m.store
        now = timeutil.now()
        if only is None:
            self._next_due = None  # a single crash must not forget the others' backoff
        self._release_dead_claims()
        store.release_stale_claims(now - max(60.0, 2 * self.cfg.health_check_interval))
        if only is not None:
            one = store.get_crash(only)
            pending = [one] if one is not None and one.fix_state == "pending" else []
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
        store = self.m.store
        tk = task_key(crash.agent_type, crash.task_id)
        self._tasks.add(tk)
        if not store.claim_crash(crash.crash_id, self.m._holder):
            return None
        st = store.get_respawn_state(tk)
        rec = self.record_from_crash(crash)
        recovered = self._finish_interrupted(crash, st)
        if recovered is not None:
            return recovered
        if st.given_up:
            store.finish_crash(
                crash.crash_id, action_taken="not respawned: gave up earlier", respawned=False
            )
            return None
        if self.is_flapping(st, now):
            return self._give_up(crash, st, rec, "flapping: exits soon after every start")
        if st.attempts >= self.cfg.max_respawn_attempts:
            return self._give_up(crash, st, rec, f"{count(st.attempts, 'respawn')} did not help")
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
        left = crash.crashed_at + self.backoff(st.attempts) - now
        due_mono = self._due_mono.setdefault(crash.crash_id, time.monotonic() + left)
        wait = due_mono - time.monotonic()
        if wait > 0:
            st.next_allowed_ts = now + wait
            store.save_respawn_state(st)
            store.finish_crash(
                crash.crash_id, action_taken=f"respawning in {wait:.0f}s", fix_state="pending"
            )
            self._next_due = due_mono if self._next_due is None else min(self._next_due, due_mono)
            return None
        self._due_mono.pop(crash.crash_id, None)
        return self._respawn(rec, crash=crash, st=st, manual=False)

    def _release_dead_claims(self) -> None:
        """Claims held by a monitor process that is gone go back to pending now.

        A fixer SIGKILLed mid-respawn leaves its crash ``claimed``; waiting out
        the stale-claim timeout would leave that crash unhandled for a minute.
        The claimer is ``name:pid:create_time``, so its death is certain.
        """
        store = self.m.store
        for crash_id, claimer, _ts in store.claimed_crashes():
            if not claimer or claimer == self.m._holder:
                continue
            try:
                _name, pid_text, ct_text = claimer.rsplit(":", 2)
                pid, create_time = int(pid_text), float(ct_text)
            except ValueError:
                continue
            raw = procs.read_proc(pid)
            if raw is not None and raw.state != "Z" and abs(raw.start_time - create_time) < 1.0:
                continue  # its monitor is alive and still working on it
            if store.release_claim(crash_id, claimer):
                log.info("crash %s: claim of dead monitor %s released", crash_id, claimer)
                self._interrupted[crash_id] = _ts if _ts is not None else 0.0

    def _finish_interrupted(self, crash: CrashRow, st: RespawnState) -> ActionResult | None:
        """A fixer killed right after starting the new run: finish its bookkeeping
        instead of starting a second run for the same crash."""
        store = self.m.store
        done = store.respawn_of_crash(crash.crash_id)
        if done is not None:
            store.finish_crash(
                crash.crash_id, action_taken=f"respawned {st.attempts}", respawned=True
            )
            return ActionResult(True, "respawn", "respawned before a restart", agent_key=done[0])
        child = store.ohm_agent_respawning(crash.agent_key)
        since = self._interrupted.pop(crash.crash_id, None)
        if child is None and since is not None:
            child = self._adopt_orphan(crash, since)
        if child is None:
            return None
        started = float(child.get("started_ts") or timeutil.now())
        attempt = st.attempts + 1
        st.attempts = attempt
        st.last_attempt_ts = st.last_start_ts = started
        st.next_allowed_ts = None
        action = f"respawned {attempt}/{self.cfg.max_respawn_attempts}"
        new_key = str(child["agent_key"])
        with store.transaction():
            store.save_respawn_state(st)
            store.add_respawn(
                task_key=st.task_key,
                crash_id=crash.crash_id,
                old_key=crash.agent_key,
                new_key=new_key,
                ok=True,
                message=f"respawn {attempt}/{self.cfg.max_respawn_attempts} "
                "(recorded after a restart of ohm)",
                ts=started,
            )
            store.finish_crash(crash.crash_id, action_taken=action, respawned=True)
        msg = (
            f"{action}: {crash.agent_type} {crash.task_id or ''} as pid {child['pid']} "
            f"(was {crash.agent_pid}; recorded after a restart of ohm)"
        )
        self.m.event(
            "respawned",
            msg,
            agent_key=new_key,
            agent_pid=int(child["pid"]),
            agent_type=crash.agent_type,
            task_id=crash.task_id,
            crash_id=crash.crash_id,
            data={"old_key": crash.agent_key},
        )
        rec = self.record_from_crash(crash)
        if rec.source in WRITE_BACK_SOURCES:
            self._write_back(
                rec,
                AgentRecord(
                    key=new_key,
                    pid=int(child["pid"]),
                    agent_type=crash.agent_type,
                    task_id=crash.task_id,
                    source="ohm_spawned",
                    command=list(child.get("argv") or rec.command),
                    command_text=str(child.get("command_text") or rec.command_text),
                    cwd=child.get("cwd"),
                    log_file=child.get("log_file"),
                    started_at=started,
                    status="running",
                    create_time=child.get("create_time"),
                ),
            )
        return ActionResult(True, "respawn", msg, agent_key=new_key, new_pid=int(child["pid"]))

    def _adopt_orphan(self, crash: CrashRow, since: float) -> dict[str, Any] | None:
        """Find the run a monitor killed mid-respawn had started but not written down.

        Its runner outlives the monitor: a run still at work is found by the log
        file its stdout points to (ohm names it ``<type>-<task>-<ms>.log``); a run
        that ended already left an exit record naming the crash it replaced. The
        run is recorded as this crash's respawn, so no second one is started.
        """
        prefix = f"{slug(crash.agent_type)}-{slug(crash.task_id, 'none')}-"
        log_dir = os.path.abspath(self.cfg.log_dir_path)
        known = {int(r["pid"]) for r in self.m.store.list_ohm_agents(running_only=False)}
        found: tuple[int, float, str | None] | None = None
        exits = self.cfg.exits_dir_path
        try:
            entries = list(os.scandir(exits))
        except OSError:
            entries = []
        for entry in entries:
            if not entry.name.endswith(".json"):
                continue
            data = procs.read_exit_record(entry.path) or {}
            meta = data.get("meta")
            if not isinstance(meta, dict):
                continue
            if meta.get("respawn_of") == crash.agent_key and data.get("pid") not in known:
                started = timeutil.to_epoch(data.get("started_at")) or since
                found = (int(data["pid"]), started, data.get("log_file"))
                break
        if found is None:
            for pid, raw in procs.scan_processes().items():
                if pid in known or raw.start_time < since - 1.0 or raw.state == "Z":
                    continue
                parent = procs.read_proc(raw.ppid)
                if parent is None or parent.name != procs.RUNNER_COMM:
                    continue
                try:
                    out = os.readlink(f"/proc/{pid}/fd/1")
                except OSError:
                    continue
                if os.path.dirname(out) == log_dir and os.path.basename(out).startswith(prefix):
                    found = (pid, raw.start_time, out)
                    break
        if found is None:
            return None
        pid, started, log_file = found
        try:
            argv = shlex.split(crash.command_text or "")
        except ValueError:
            argv = (crash.command_text or "").split()
        key = statefile.agent_key(pid, started)
        self.m.store.add_ohm_agent(
            agent_key=key,
            pid=pid,
            create_time=started,
            agent_type=crash.agent_type,
            task_id=crash.task_id,
            argv=argv,
            command_text=crash.command_text,
            cwd=crash.cwd,
            log_file=log_file,
            source_file=str(self.cfg.agent_state_path) if crash.source in ("real", "ohm") else None,
            respawn_of=crash.agent_key,
            started_ts=started,
        )
        log.warning("adopted pid %s: started for crash %s by a monitor killed meanwhile", pid, key)
        return self.m.store.ohm_agent(key)

    def _give_up(
        self, crash: CrashRow, st: RespawnState, rec: AgentRecord, why: str
    ) -> ActionResult:
        store = self.m.store
        st.given_up = True
        st.given_up_ts = timeutil.now()
        st.next_allowed_ts = None
        store.save_respawn_state(st)
        tries = count(st.attempts, "respawn")
        msg = f"gave up on {rec.agent_type} {rec.task_id or ''} after {tries}: {why}"
        store.finish_crash(crash.crash_id, action_taken="gave up", respawned=False)
        self.m.event(
            "gave_up",
            msg.strip(),
            agent_key=rec.key,
            agent_pid=rec.pid,
            agent_type=rec.agent_type,
            task_id=rec.task_id,
            crash_id=crash.crash_id,
        )
        self.m.notifier.alert("warning", msg)
        return ActionResult(False, "give_up", msg, agent_key=rec.key)

    def record_from_crash(self, crash: CrashRow) -> AgentRecord:
        """Rebuild what is needed to run a crashed agent again from its crash row."""
        obs = self.m._observations.get(crash.agent_key)
        if obs is not None:
            return obs.record
        try:
            argv = shlex.split(crash.command_text or "")
        except ValueError:
            argv = (crash.command_text or "").split()
        return AgentRecord(
            key=crash.agent_key,
            pid=crash.agent_pid,
            agent_type=crash.agent_type,
            task_id=crash.task_id,
            source=crash.source
            if crash.source in ("real", "ohm", "ohm_spawned", "lifecycle", "session")
            else "ohm_spawned",  # type: ignore[arg-type]
            command=argv,
            command_text=crash.command_text or "",
            cwd=crash.cwd,
            log_file=crash.log_file,
            started_at=None,
            status="crashed",
            exit_code=crash.exit_code,
        )

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
        seen = self.m.process_cwd(rec.key)
        if seen:
            return seen, "where it ran"
        orch = self.m.orchestrator_cwd()
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
    ) -> ActionResult:
        store = self.m.store
        now = timeutil.now()
        crash_id = crash.crash_id if crash else None
        attempt = st.attempts + 1
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
            self.m.event(
                EventKind.RESPAWN_FAILED,
                msg[:500],
                agent_key=rec.key,
                agent_pid=rec.pid,
                agent_type=rec.agent_type,
                task_id=rec.task_id,
                crash_id=crash_id,
            )
            # Nothing runs this task now: say so loudly (the check keeps it visible).
            self.m.notifier.alert("warning", msg)
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
        self.m.event(
            EventKind.RESPAWNED,
            msg,
            agent_key=new.key,
            agent_pid=new.pid,
            agent_type=rec.agent_type,
            task_id=rec.task_id,
            crash_id=crash_id,
            data={"old_key": rec.key},
        )
        if rec.source in WRITE_BACK_SOURCES:
            self._write_back(rec, new, restarted=restarted)
        return ActionResult(True, "respawn", msg, agent_key=new.key, new_pid=new.pid)

    def is_running(self, rec: AgentRecord) -> bool:
        """Is this very run alive now (PID, start time and command checked)?"""
        raw = procs.read_proc(rec.pid)
        if raw is None or raw.state in "ZXx":
            return False
        return procs.identity_matches(
            rec.pid,
            started_at=rec.started_at,
            create_time=rec.create_time,
            tolerance=self.cfg.pid_start_tolerance,
            command=rec.command or None,
            raw=raw,
        )

    def other_live_run(self, rec: AgentRecord) -> AgentRecord | None:
        """Another live run on the same task (a respawn would make it two copies)."""
        if not rec.task_id:
            return None  # agents without a task may legitimately run side by side
        for obs in list(self.m._observations.values()):
            other = obs.record
            if (
                other.key != rec.key
                and obs.liveness == "alive"
                and task_key(other.agent_type, other.task_id)
                == task_key(rec.agent_type, rec.task_id)
                and self.is_running(other)
            ):
                return other
        return None

    def manual_respawn(self, rec: AgentRecord, *, restarted: bool = False) -> ActionResult:
        """Respawn by hand (the monitor's lock held). ``restarted``: the old run was
        just stopped by ``restart``. A run that is alive is never started twice."""
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
        st = self.m.store.get_respawn_state(task_key(rec.agent_type, rec.task_id))
        crash = self.m.store.crash_by_key(rec.key)
        if crash is not None and not self.m.store.claim_crash(crash.crash_id, self.m._holder):
            crash = None  # already handled: still respawn (the operator asked), do not touch it
        return self._respawn(rec, crash=crash, st=st, manual=True, restarted=restarted)

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
        with self.m._lock:
            return self.manual_respawn(rec, restarted=True)

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
        res = procs.spawn_agent_process(
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
        key = statefile.agent_key(res.pid, res.create_time)
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
        self.m.store.add_ohm_agent(
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
            self.m.event(
                "spawned",
                f"started {agent_type} {task_id or ''} as pid {res.pid}",
                agent_key=key,
                agent_pid=res.pid,
                agent_type=agent_type,
                task_id=task_id,
            )
        return rec

    def _write_back(self, old: AgentRecord, new: AgentRecord, *, restarted: bool = False) -> None:
        """Tell the orchestrator: the new PID runs this task now, the old one ended.

        A restarted run was stopped on purpose: it is booked ``killed``, as the
        orchestrator books its own kills, never as a crash.
        """
        if old.source not in ("real", "ohm"):
            try:
                if old.exit_code is None:  # the row had none: the crash row may have it
                    crash = self.m.store.crash_by_key(old.key)
                    if crash is not None and crash.exit_code is not None:
                        old = dataclasses.replace(old, exit_code=crash.exit_code)
                self.m._sources.write_respawn(old, new, restarted=restarted)
            except (SourceWriteError, StoreError) as exc:
                self.m.event(
                    "write_back_failed",
                    f"could not record respawned pid {new.pid}: {exc}"[:500],
                    agent_key=new.key,
                )
            return
        fmt = self.m._last_view.format if self.m._last_view else "real"

        def mutate(data: dict[str, Any]) -> None:
            active = data.setdefault("active_agents", {})
            old_entry = active.get(str(old.pid)) if isinstance(active, dict) else None
            entry: dict[str, Any] = {}
            if isinstance(old_entry, dict):
                entry = {
                    k: v
                    for k, v in old_entry.items()
                    if k
                    in (
                        "agent_type",
                        "task_id",
                        "task_type",
                        "priority_number",
                        "worktree_path",
                        "cwd",
                    )
                }
                same = timeutil.to_epoch(old_entry.get("started_at"))
                if old.started_at is None or same is None or abs(same - old.started_at) < 5:
                    statefile.move_to_completed(
                        data,
                        str(old.pid),
                        completed_at=timeutil.now(),
                        status="killed" if restarted else "failed",
                        exit_code=old.exit_code,
                        reason="restarted by operator"
                        if restarted
                        else "crashed; respawned by ohm",
                    )
            started = new.create_time or timeutil.now()
            entry.update(
                pid=new.pid,
                agent_type=old.agent_type,
                task_id=old.task_id,
                command=new.command if fmt == "ohm" else shlex.join(new.command),
                started_at=timeutil.iso_utc(started)
                if fmt == "ohm"
                else timeutil.iso_local_naive(started),
                status="running",
                log_file=new.log_file,
                respawned_by="ohm",
                respawn_of=old.key,
            )
            if new.cwd:
                entry["cwd"] = new.cwd
            statefile.add_active_entry(data, entry)

        try:
            statefile.update_agent_state(self.cfg.agent_state_path, mutate)
        except (statefile.StateFileError, OSError) as exc:
            self.m.event(
                "write_back_failed",
                f"could not write respawned pid {new.pid} back into the state file: {exc}"[:500],
                agent_key=new.key,
            )

    # ------------------------------------------------------------ stop
    def stop(self, rec: AgentRecord, *, restart: bool = False) -> ActionResult:
        """SIGTERM, then SIGKILL after the grace period, only after checking identity.

        The operator's intent is recorded first, as a ``stopped_by_operator`` (or
        ``restarted_by_operator``) event: the death that follows is then never
        taken for a crash, by this monitor or any other (no crash row, no
        crash-storm count, no respawn). A stop that does not happen cancels it.
        Called WITHOUT the monitor's lock: it waits out a grace period.
        """
        if rec.source == "session":
            msg = f"{rec.agent_type} is a session (a thread of the orchestrator): never signalled"
            return ActionResult(False, "stop", msg, agent_key=rec.key)
        kind = EventKind.RESTARTED_BY_OPERATOR if restart else EventKind.STOPPED_BY_OPERATOR
        grace = self.cfg.stop_grace_period
        who = f"{rec.agent_type} pid {rec.pid}"
        fields: dict[str, Any] = {
            "agent_key": rec.key,
            "agent_pid": rec.pid,
            "agent_type": rec.agent_type,
            "task_id": rec.task_id,
        }
        # Only a live run gets the marker: one that died already (maybe unseen yet)
        # crashed, and its crash must be recorded, never explained away.
        alive = self.is_running(rec)
        if alive:
            with self.m._lock:
                marked = self.m.event(
                    kind,
                    f"{who} {'restarted' if restart else 'stopped'} by operator "
                    f"(SIGTERM, then SIGKILL after {grace:g}s)",
                    **fields,
                )
            if marked is None:
                return ActionResult(
                    False, "stop", f"not stopped: cannot record the stop first ({who})", rec.key
                )
        outcome = procs.terminate_verified(
            rec.pid,
            create_time=rec.create_time,
            started_at=rec.started_at,
            tolerance=self.cfg.pid_start_tolerance,
            command=rec.command or None,
            grace=grace,
            group=True,
        )
        gone: tuple[str, ...] = ("terminated", "killed", "not_running")
        if restart:  # the old run is gone either way: a zombie is dead, a new PID owner not it
            gone += ("zombie", "identity_mismatch")
        ok = outcome in gone
        msg = f"stop {who}: {outcome.replace('_', ' ')}"
        if outcome == "identity_mismatch":
            msg += " (PID now belongs to another process: not signalled)"
        elif outcome == "still_running":
            msg += " (still there after SIGKILL; it will not die)"
        with self.m._lock:
            if not restart or not ok:
                self.m.event(EventKind.STOPPED, msg, **fields)
            if alive and not ok:
                self.m.event(EventKind.STOP_FAILED, f"{who} was not stopped", **fields)
            elif alive and not restart and rec.source in ("real", "ohm"):
                self._book_stopped(rec)
        return ActionResult(ok, "stop", msg, agent_key=rec.key)

    def _book_stopped(self, rec: AgentRecord) -> None:
        """Move a stopped entry to ``completed_agents`` as ``killed`` (as the
        orchestrator books its own kills), so no check takes it for a crash."""

        def mutate(data: dict[str, Any]) -> None:
            active = data.get("active_agents")
            entry = active.get(str(rec.pid)) if isinstance(active, dict) else None
            if not isinstance(entry, dict):
                return
            same = timeutil.to_epoch(entry.get("started_at"))
            if (
                rec.started_at is not None
                and same is not None
                and abs(same - rec.started_at) > self.cfg.pid_start_tolerance
            ):
                return  # a newer run under this PID: not ours to move
            statefile.move_to_completed(
                data,
                str(rec.pid),
                completed_at=timeutil.now(),
                status="killed",
                exit_code=rec.exit_code,
                reason="stopped by operator",
            )

        try:
            statefile.update_agent_state(self.cfg.agent_state_path, mutate)
        except (statefile.StateFileError, OSError) as exc:
            self.m.event(
                "write_back_failed",
                f"could not book stopped pid {rec.pid} in the state file: {exc}"[:500],
                agent_key=rec.key,
            )

    # ------------------------------------------------------------ cleanup
    def _stale(self, observations: list[Observation]) -> list[Observation]:
        """Entries to move to completed_agents: dead, and not waiting for a respawn
        (a pending respawn moves its own entry when it writes the new PID back)."""
        out = []
        for o in observations:
            if not (o.stale_entry and o.record.source in STALE_SOURCES and o.liveness != "alive"):
                continue
            if o.record.source in ("real", "ohm") and not self.m._state_ok:
                continue  # a file ohm cannot read now is never written
            if not self.m._sources.ok_for(o.record):
                continue
            if o.is_crash:
                try:
                    row = self.m.store.crash_by_key(o.record.key)
                except StoreError:
                    continue
                if row is None or row.fix_state in ("pending", "claimed"):
                    continue
            out.append(o)
        return out

    def plan_cleanup(self, observations: list[Observation]) -> list[str]:
        """Exactly what ``clean`` would do, one line each, for confirmation prompts."""
        lines = []
        for o in self._stale(observations):
            r = o.record
            where = "completed_agents" if r.source in ("real", "ohm") else "completed (its row)"
            lines.append(
                f"move stale entry pid {r.pid} ({r.agent_type} {r.task_id or '-'}) "
                f"to {where}: {o.reason}"
            )
        for o in observations:
            if (o.zombie or o.liveness == "zombie") and o.raw is not None:
                whose = (
                    "reap (ohm's own child)"
                    if o.raw.ppid == os.getpid()
                    else (f"report parent {o.raw.ppid} (not ohm's child; cannot reap)")
                )
                lines.append(f"zombie pid {o.record.pid} ({o.record.agent_type}): {whose}")
        return lines

    def clean(self, observations: list[Observation]) -> ActionResult:
        """Move stale entries to completed_agents, as the orchestrator does; reap our zombies."""
        stale = self._stale(observations)
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
                if o.liveness == "not_running":
                    status = r.status  # the orchestrator's own word: completed, killed...
                elif o.exit_code in (0, None) and not o.is_crash:
                    status = "completed"
                else:
                    status = "failed"
                if statefile.move_to_completed(
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
                statefile.update_agent_state(self.cfg.agent_state_path, mutate)
            except (statefile.StateFileError, OSError) as exc:
                return ActionResult(False, "clean_zombies", f"cleanup failed: {exc}")
        for o in rows:
            if o.exit_code is None:  # its exit record is consumed: the crash row kept it
                try:
                    crash = self.m.store.crash_by_key(o.record.key)
                except StoreError:
                    crash = None
                if crash is not None and crash.exit_code is not None:
                    o.exit_code, o.is_crash = crash.exit_code, True
        if rows:
            try:
                moved += self.m._sources.move_stale(rows, timeutil.now())
            except SourceWriteError as exc:
                return ActionResult(False, "clean_zombies", f"cleanup failed: {exc}")
        reaped = [pid for pid, _ in procs.reap_children()]
        msg = f"moved {count(len(moved), 'stale entry')} to completed_agents"
        if reaped:
            msg += f"; reaped {count(len(reaped), 'zombie')}"
        if moved or reaped:
            self.m.event("cleaned", msg, data={"pids": moved, "reaped": reaped})
        return ActionResult(True, "clean_zombies", msg, details={"moved": moved, "reaped": reaped})

    # ------------------------------------------------------------ level 3
    def _maybe_restart(self, report: HealthReport) -> ActionResult | None:
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
            for e in self.m.store.list_events(since=now - self.cfg.orchestrator_freeze_threshold)
            if e.kind == "restart_started"
        ]
        if recent:
            return None
        stopped = "no identified orchestrator process"
        pid = self._orch_pid
        if pid is not None:
            raw = procs.read_proc(pid)
            if raw is not None:
                stopped = procs.terminate_verified(
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
            res = procs.spawn_agent_process(
                list(argv),
                cwd=cwd,
                log_file=log_file,
                exits_dir=self.cfg.path("ohm/exits-orchestrator"),
                env=None,
                meta={"role": "orchestrator"},
            )
        except OSError as exc:
            msg = f"orchestrator restart failed to start {shlex.join(argv)}: {exc}"
            self.m.event("restart_failed", msg[:500])
            self.m.notifier.alert("critical", msg)
            self.m.reporter.restart_failed(msg)
            return ActionResult(False, "restart", msg)
        self._restart = RestartAttempt(now, now + self.cfg.restart_verify_timeout, res.pid)
        msg = f"restarting orchestrator (old: {stopped}); new pid {res.pid}, log {log_file}"
        self.m.event("restart_started", msg, agent_pid=res.pid)
        return ActionResult(True, "restart", msg, new_pid=res.pid)

    def _verify_restart(self, loop: Any, now: float) -> None:
        r = self._restart
        if r is None:
            return
        if loop is not None and loop.last_update is not None and loop.last_update > r.started_ts:
            self._restart = None
            self.m.event(
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
            self.m.event("restart_failed", msg, agent_pid=r.pid)
            self.m.notifier.alert("critical", msg)
            self.m.reporter.restart_failed(msg)

    @property
    def restart_pending(self) -> bool:
        return self._restart is not None
