"""Crashes (``agent_crashes``), health checks, and the claims that make each respawn happen once."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ohm_tui.engine.model import CrashInfo, CrashRow, FixState, HealthReport
from ohm_tui.engine.store.base import FIX_STATES
from ohm_tui.engine.store.database import Repository
from ohm_tui.engine.store.rows import (
    _AGENT_COLS,
    _CRASH_FULL,
    _CRASH_SUMMARY,
    _clip,
    _crash_row,
    _json_list,
    _opt_float,
    agent_dict,
)
from ohm_tui.engine.timeutil import iso_utc
from ohm_tui.engine.timeutil import now as _now

# The stored words of the two fix states SQL selects on (model.lifecycle.FixState).
_PENDING, _CLAIMED = FixState.PENDING.value, FixState.CLAIMED.value


class CrashRepository(Repository):
    """A repository over the one ``Database`` it is given."""

    def record_health_check(
        self,
        report: HealthReport,
        *,
        zombie_processes: int,
        orchestrator_responsive: bool | None,
        actions: list[str],
        bugs: list[int],
        monitor: str,
    ) -> int:
        poll = report.orchestrator_last_poll
        values = (
            iso_utc(report.checked_at),
            report.status,
            report.active_agents,
            report.crashed_agents_last_hour,
            zombie_processes,
            None if orchestrator_responsive is None else int(orchestrator_responsive),
            None if poll is None else int(poll),
            json.dumps(actions),
            json.dumps(bugs),
            report.checked_at,
            json.dumps([i.to_dict() for i in report.issues], default=str),
            monitor,
        )

        def run(conn: sqlite3.Connection) -> int:
            cur = conn.execute(
                "INSERT INTO health_checks (timestamp, status, active_agents, crashed_agents, "
                "zombie_processes, orchestrator_responsive, last_poll_age_seconds, actions_taken, "
                "bugs_reported, ts, issues_json, monitor) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                values,
            )
            return int(cur.lastrowid or 0)

        return self._write(run, "record a health check")

    def list_health_checks(
        self, *, since: float | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        """Recent checks, newest first, as dicts (``issues`` decoded)."""
        rows = self._rows(
            "SELECT check_id, ts, status, active_agents, crashed_agents, zombie_processes, "
            "orchestrator_responsive, last_poll_age_seconds, actions_taken, bugs_reported, "
            "issues_json, monitor FROM health_checks WHERE ts >= ? ORDER BY ts DESC LIMIT ?",
            (since if since is not None else -1.0, limit),
        )
        out = []
        for r in rows:
            out.append(
                {
                    "check_id": r[0],
                    "ts": r[1],
                    "status": r[2],
                    "active_agents": r[3],
                    "crashed_agents": r[4],
                    "zombie_processes": r[5],
                    "orchestrator_responsive": None if r[6] is None else bool(r[6]),
                    "last_poll_age_seconds": r[7],
                    "actions_taken": _json_list(r[8]),
                    "bugs_reported": _json_list(r[9]),
                    "issues": _json_list(r[10]),
                    "monitor": r[11],
                }
            )
        return out

    def record_crash(
        self,
        *,
        agent_key: str,
        agent_pid: int,
        agent_type: str,
        task_id: str | None,
        crashed_at: float,
        exit_code: int | None,
        info: CrashInfo,
        log_file: str | None,
        command_text: str | None,
        cwd: str | None,
        source: str,
        action_taken: str | None = None,
        fix_state: str = FixState.PENDING,
    ) -> tuple[int, bool]:
        """Record one crashed run once: a second call for the same run returns its id."""
        crash = NewCrash(
            agent_key=agent_key,
            agent_pid=agent_pid,
            agent_type=agent_type,
            task_id=task_id,
            crashed_at=crashed_at,
            exit_code=exit_code,
            info=info,
            log_file=log_file,
            command_text=command_text,
            cwd=cwd,
            source=source,
            action_taken=action_taken,
            fix_state=fix_state,
        )
        return self.record_crashes([crash])[0]

    def record_crashes(self, crashes: Sequence[NewCrash]) -> list[tuple[int, bool]]:
        """Record many crashed runs in one transaction (a crash storm commits once, not
        once per death), each once: ``(crash_id, created)`` per crash, in order. A run
        already recorded (here or by another process) keeps its row and its id."""
        for crash in crashes:
            if crash.fix_state not in FIX_STATES:
                raise ValueError(
                    f"fix_state must be one of {', '.join(FIX_STATES)}: {crash.fix_state!r}"
                )
        rows = [(c, _crash_values(c)) for c in crashes]

        def run(conn: sqlite3.Connection) -> list[tuple[int, bool]]:
            return [_insert_crash(conn, c, values) for c, values in rows]

        if not rows:
            return []
        return self._write(run, "record a crash" if len(rows) == 1 else "record crashes")

    def crash_groups(self, since: float, *, flagged: Sequence[str] = ()) -> list[CrashGroup]:
        """Crashes since ``since`` (but "Stopped") per task key, the task with the newest
        crash first: counted by SQLite, so a bug pass reads one row per task, not a
        row per crash (5,000 crash rows a pass made the daemon's memory high-water
        climb with its history). Only tasks with a crash not on a bug yet: the rest
        has nothing left to file. ``flagged``: error types a group tells it has."""
        marks = ",".join("?" * len(flagged)) or "NULL"
        rows = self._rows(
            f"SELECT {_TASK_KEY_SQL} AS tk, COUNT(*), "
            f"MAX(COALESCE(error_type, '') IN ({marks})), "
            "SUM(bug_number IS NULL) FROM agent_crashes "
            "WHERE crashed_ts >= ? AND COALESCE(error_type, '') != 'Stopped' "
            "GROUP BY tk HAVING SUM(bug_number IS NULL) > 0 ORDER BY MAX(crashed_ts) DESC",
            (*flagged, float(since)),
            action="count crashes",
        )
        return [CrashGroup(str(r[0]), int(r[1]), bool(r[2] or 0), int(r[3] or 0)) for r in rows]

    def task_crash_ids(self, task_key: str, since: float) -> list[tuple[int, bool]]:
        """``(crash_id, has_bug)`` of one task key's crashes since ``since`` (but
        "Stopped"), newest first (a ``crash_groups`` group, one by one)."""
        rows = self._rows(
            "SELECT crash_id, bug_number IS NOT NULL FROM agent_crashes "
            f"WHERE {_TASK_KEY_SQL} = ? AND crashed_ts >= ? "
            "AND COALESCE(error_type, '') != 'Stopped' ORDER BY crashed_ts DESC, crash_id DESC",
            (task_key, float(since)),
        )
        return [(int(r[0]), bool(r[1])) for r in rows]

    def get_crash(self, crash_id: int) -> CrashRow | None:
        row = self._one(f"SELECT {_CRASH_FULL} FROM agent_crashes WHERE crash_id=?", (crash_id,))
        return _crash_row(row) if row else None

    def latest_crash_of_task(self, task: str) -> CrashRow | None:
        """The newest crash of a task key (``task:<id>`` or ``type:<agent type>``), without
        its stack trace and log excerpt (a summary, read every check)."""
        kind, _, name = task.partition(":")
        where = "task_id = ?" if kind == "task" else "agent_type = ? AND task_id IS NULL"
        row = self._one(
            f"SELECT {_CRASH_SUMMARY} FROM agent_crashes WHERE {where} "
            "ORDER BY crashed_ts DESC, crash_id DESC LIMIT 1",
            (name,),
        )
        return _crash_row(row) if row else None

    def crash_by_key(self, agent_key: str) -> CrashRow | None:
        row = self._one(f"SELECT {_CRASH_FULL} FROM agent_crashes WHERE agent_key=?", (agent_key,))
        return _crash_row(row) if row else None

    def list_crashes(
        self,
        *,
        since: float | None = None,
        agent_type: str | None = None,
        task_id: str | None = None,
        fingerprint: str | None = None,
        limit: int | None = None,
        summary: bool = False,
    ) -> list[CrashRow]:
        """Crashes newest first. ``summary=True`` leaves out stack traces and log excerpts."""
        where, params = self._crash_filter(since, agent_type, task_id, fingerprint)
        sql = f"SELECT {_CRASH_SUMMARY if summary else _CRASH_FULL} FROM agent_crashes{where}"
        sql += " ORDER BY crashed_ts DESC, crash_id DESC"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(int(limit))
        return [_crash_row(r) for r in self._rows(sql, params, action="list crashes")]

    @staticmethod
    def _crash_filter(
        since: float | None,
        agent_type: str | None,
        task_id: str | None,
        fingerprint: str | None,
    ) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        params: list[Any] = []
        if agent_type is not None:
            clauses.append("agent_type = ?")
            params.append(agent_type)
        if task_id is not None:
            clauses.append("task_id = ?")
            params.append(task_id)
        if fingerprint is not None:
            clauses.append("fingerprint = ?")
            params.append(fingerprint)
        if since is not None:
            clauses.append("crashed_ts >= ?")
            params.append(float(since))
        return (" WHERE " + " AND ".join(clauses) if clauses else ""), params

    def count_crashes(
        self,
        since: float,
        *,
        agent_type: str | None = None,
        task_id: str | None = None,
        fingerprint: str | None = None,
    ) -> int:
        where, params = self._crash_filter(since, agent_type, task_id, fingerprint)
        row = self._one(f"SELECT COUNT(*) FROM agent_crashes{where}", params)
        return int(row[0]) if row else 0

    def crash_histogram(self, *, since: float, bucket_seconds: int, buckets: int) -> list[int]:
        """Crashes per bucket from ``since``, oldest first; later crashes land in the last."""
        if bucket_seconds <= 0 or buckets <= 0:
            raise ValueError("bucket_seconds and buckets must be greater than 0")
        rows = self._rows(
            "SELECT MIN(CAST((crashed_ts - ?) / ? AS INTEGER), ?) AS b, COUNT(*) "
            "FROM agent_crashes WHERE crashed_ts >= ? GROUP BY b",
            (float(since), float(bucket_seconds), buckets - 1, float(since)),
        )
        out = [0] * buckets
        for b, n in rows:
            out[int(b)] += int(n)
        return out

    def oldest_crash_since(self, since: float) -> float | None:
        """When the oldest crash at or after ``since`` happened (what a histogram must cover)."""
        row = self._one("SELECT MIN(crashed_ts) FROM agent_crashes WHERE crashed_ts >= ?", (since,))
        return None if row is None or row[0] is None else float(row[0])

    def pending_crashes(self) -> list[CrashRow]:
        rows = self._rows(
            f"SELECT {_CRASH_FULL} FROM agent_crashes WHERE fix_state='{_PENDING}' "
            "ORDER BY crashed_ts, crash_id"
        )
        return [_crash_row(r) for r in rows]

    def claim_crash(self, crash_id: int, claimer: str, *, now: float | None = None) -> bool:
        """Take a pending crash for fixing; exactly one caller across processes wins."""
        ts = _now() if now is None else now

        def run(conn: sqlite3.Connection) -> bool:
            cur = conn.execute(
                f"UPDATE agent_crashes SET fix_state='{_CLAIMED}', fix_claimed_by=?, "
                f"fix_claimed_ts=? WHERE crash_id=? AND fix_state='{_PENDING}'",
                (claimer, ts, crash_id),
            )
            return cur.rowcount == 1

        return self._write(run, "claim a crash")

    def finish_crash(
        self,
        crash_id: int,
        *,
        action_taken: str,
        respawned: bool | None = None,
        fix_state: str = FixState.DONE,
    ) -> None:
        if fix_state not in FIX_STATES:
            raise ValueError(f"fix_state must be one of {', '.join(FIX_STATES)}: {fix_state!r}")

        def run(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE agent_crashes SET action_taken=?, fix_state=?, "
                "respawned=COALESCE(?, respawned) WHERE crash_id=?",
                (action_taken, fix_state, None if respawned is None else int(respawned), crash_id),
            )

        self._write(run, "finish a crash")

    def set_crash_bug(self, crash_id: int, bug_number: int) -> None:
        self._write(
            lambda c: c.execute(
                "UPDATE agent_crashes SET bug_reported=1, bug_number=? WHERE crash_id=?",
                (bug_number, crash_id),
            ),
            "link a crash to a bug",
        )

    def claimed_crashes(self) -> list[tuple[int, str | None, float | None]]:
        """``(crash_id, claimed_by, claimed_ts)`` of every crash being fixed right now."""
        rows = self._rows(
            "SELECT crash_id, fix_claimed_by, fix_claimed_ts FROM agent_crashes "
            f"WHERE fix_state='{_CLAIMED}'"
        )
        return [(int(r[0]), r[1], _opt_float(r[2])) for r in rows]

    def release_claim(self, crash_id: int, claimer: str) -> bool:
        """Give one claim back to pending, if ``claimer`` still holds it."""

        def run(conn: sqlite3.Connection) -> bool:
            cur = conn.execute(
                f"UPDATE agent_crashes SET fix_state='{_PENDING}', fix_claimed_by=NULL, "
                f"fix_claimed_ts=NULL WHERE crash_id=? AND fix_state='{_CLAIMED}' "
                "AND fix_claimed_by=?",
                (crash_id, claimer),
            )
            return cur.rowcount == 1

        return self._write(run, "release a claim")

    def respawn_of_crash(self, crash_id: int) -> tuple[str | None, float] | None:
        """``(new_key, ts)`` of the successful respawn recorded for a crash, if any."""
        row = self._one(
            "SELECT new_key, ts FROM ohm_respawns WHERE crash_id=? AND ok=1 ORDER BY id LIMIT 1",
            (crash_id,),
        )
        return (row[0], float(row[1])) if row else None

    def ohm_agent_respawning(self, old_key: str) -> dict[str, Any] | None:
        """The run ohm started in place of ``old_key``, if it recorded one."""
        row = self._one(
            f"SELECT {', '.join(_AGENT_COLS)} FROM ohm_agents WHERE respawn_of=? "
            "ORDER BY started_ts LIMIT 1",
            (old_key,),
        )
        return agent_dict(row) if row else None

    def release_stale_claims(self, older_than_ts: float) -> int:
        """Claims left by a monitor that died mid-fix go back to pending."""

        def run(conn: sqlite3.Connection) -> int:
            cur = conn.execute(
                f"UPDATE agent_crashes SET fix_state='{_PENDING}', fix_claimed_by=NULL, "
                f"fix_claimed_ts=NULL WHERE fix_state='{_CLAIMED}' AND "
                "COALESCE(fix_claimed_ts, 0) < ?",
                (older_than_ts,),
            )
            return int(cur.rowcount)

        return self._write(run, "release stale claims")

    def crash_tally(self) -> list[tuple[str, str, int]]:
        """``(agent_type, error_type, crashes)`` over the kept history ("" when unknown)."""
        rows = self._rows(
            "SELECT agent_type, COALESCE(error_type, ''), COUNT(*) FROM agent_crashes "
            "GROUP BY 1, 2",
            action="count crashes",
        )
        return [(str(r[0]), str(r[1]), int(r[2])) for r in rows]


# ``model.task_key`` in SQL: respawn limits and crash bugs count per task, or per type.
_TASK_KEY_SQL = (
    "CASE WHEN COALESCE(task_id, '') != '' THEN 'task:' || task_id "
    "ELSE 'type:' || COALESCE(NULLIF(agent_type, ''), 'agent') END"
)


@dataclass(frozen=True, slots=True)
class CrashGroup:
    """One task key's crashes in a window (``crash_groups``)."""

    task_key: str
    count: int
    flagged: bool  # any of them of an error type the caller flagged
    unbugged: int  # how many are linked to no bug yet


@dataclass(frozen=True, slots=True)
class NewCrash:
    """One crashed run to record (``record_crashes``)."""

    agent_key: str
    agent_pid: int
    agent_type: str
    task_id: str | None
    crashed_at: float
    exit_code: int | None
    info: CrashInfo
    log_file: str | None
    command_text: str | None
    cwd: str | None
    source: str
    action_taken: str | None = None
    fix_state: str = "pending"


def _crash_values(c: NewCrash) -> tuple[Any, ...]:
    info = c.info
    return (
        c.agent_pid,
        c.agent_type,
        c.task_id,
        iso_utc(c.crashed_at),
        info.error_type,
        _clip(info.error_message, 16384),
        _clip(info.stack_trace),
        0,
        0,
        c.crashed_at,
        c.agent_key,
        c.exit_code,
        _clip(info.root_cause, 16384),
        json.dumps(list(info.related_files)),
        info.fingerprint,
        _clip(info.log_excerpt),
        c.log_file,
        c.command_text,
        c.cwd,
        c.source,
        c.action_taken,
        c.fix_state,
    )


def _insert_crash(
    conn: sqlite3.Connection, c: NewCrash, values: tuple[Any, ...]
) -> tuple[int, bool]:
    """Insert one crash row unless its run has one (the unique ``agent_key``)."""
    cur = conn.execute(
        "INSERT OR IGNORE INTO agent_crashes (agent_pid, agent_type, task_id, crashed_at, "
        "error_type, error_message, stack_trace, respawned, bug_reported, crashed_ts, "
        "agent_key, exit_code, root_cause, related_files, fingerprint, log_excerpt, "
        "log_file, command_text, cwd, source, action_taken, fix_state) "
        "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        values,
    )
    if cur.rowcount == 1:
        return int(cur.lastrowid or 0), True
    if c.exit_code is not None:  # the runner's record came after the death event
        conn.execute(
            "UPDATE agent_crashes SET exit_code=? WHERE agent_key=? AND exit_code IS NULL",
            (c.exit_code, c.agent_key),
        )
    row = conn.execute(
        "SELECT crash_id FROM agent_crashes WHERE agent_key=?", (c.agent_key,)
    ).fetchone()
    return int(row[0]), False
