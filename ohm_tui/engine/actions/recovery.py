"""Recovery after a crash of ohm: claims of dead monitors, respawns started but not
written down, orphaned runs adopted so that no crash is respawned twice."""

from __future__ import annotations

import logging
import os
from typing import Any

from ohm_tui.engine import timeutil
from ohm_tui.engine.actions.base import WRITE_BACK_SOURCES, ActionBase
from ohm_tui.engine.actions.writeback import WriteBack
from ohm_tui.engine.context import CheckState, EngineContext
from ohm_tui.engine.model import (
    ActionResult,
    AgentRecord,
    CrashRow,
    Lifecycle,
    agent_key,
    slug,
    split_command,
)
from ohm_tui.engine.store import RespawnState
from ohm_tui.engine.system import exits as exit_records
from ohm_tui.engine.system import procs

log = logging.getLogger("ohm.fixes")


class Recovery(ActionBase):
    """Recovery after a crash of ohm: claims of dead monitors, respawns started but not"""

    def __init__(self, ctx: EngineContext, state: CheckState, writeback: WriteBack) -> None:
        super().__init__(ctx, state)
        self.writeback = writeback
        # crash id -> when a monitor that died mid-fix had claimed it
        self._interrupted: dict[int, float] = {}

    def release_dead_claims(self) -> None:
        """Claims held by a monitor process that is gone go back to pending now.

        A fixer SIGKILLed mid-respawn leaves its crash ``claimed``; waiting out
        the stale-claim timeout would leave that crash unhandled for a minute.
        The claimer is ``name:pid:create_time``, so its death is certain.
        """
        store = self.ctx.store
        for crash_id, claimer, _ts in store.claimed_crashes():
            if not claimer or claimer == self.ctx.holder:
                continue
            try:
                _name, pid_text, ct_text = claimer.rsplit(":", 2)
                pid, create_time = int(pid_text), float(ct_text)
            except ValueError:
                continue
            if procs.is_running(pid, create_time):
                continue  # its monitor is alive and still working on it
            if store.release_claim(crash_id, claimer):
                log.info("crash %s: claim of dead monitor %s released", crash_id, claimer)
                self._interrupted[crash_id] = _ts if _ts is not None else 0.0

    def finish_interrupted(self, crash: CrashRow, st: RespawnState) -> ActionResult | None:
        """A fixer killed right after starting the new run: finish its bookkeeping
        instead of starting a second run for the same crash."""
        store = self.ctx.store
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
        self.move(
            Lifecycle.CRASHED,
            Lifecycle.RUNNING,
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
            self.writeback.write_back(
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
        known = {int(r["pid"]) for r in self.ctx.store.list_ohm_agents(running_only=False)}
        found: tuple[int, float, str | None] | None = None
        for path in exit_records.record_files(self.cfg.exits_dir_path):
            data = exit_records.read_exit_record(path) or {}
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
        argv = split_command(crash.command_text)
        key = agent_key(pid, started)
        self.ctx.store.add_ohm_agent(
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
        return self.ctx.store.ohm_agent(key)
