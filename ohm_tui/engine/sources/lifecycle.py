"""Era 2 and 3: the ``agent_lifecycle`` and ``orchestrator_state`` tables of
``data/orchestrator.db``, as every released version of the orchestrator writes them.

- One row per spawn; the active rows (``spawned``; ``running`` in later
  versions) are the agents. PIDs repeat across rows over time, so a run's
  identity is its PID plus its start time, as for the JSON file.
- The newest finished rows are read too: a ``failed`` row, a non-zero exit code
  or a traceback in ``stdout_output``/``stderr_output`` is a crash even after the
  orchestrator closed the row (it often leaves ``exit_code`` NULL, so a crash
  looks like a completion).
- A row whose ``pid`` is beyond ``pid_max`` (a thread identifier) or whose command
  ends in ``(session)`` is an in-process session (era 3): never a process.
- The newest ``orchestrator_state.updated_at`` is the loop's heartbeat.

Times in these tables are naive local ISO; they become UTC epoch floats here and
are compared only as numbers. Reads use a read-only connection.
"""

from __future__ import annotations

import json
import shlex
import sqlite3
from pathlib import Path
from typing import Any

from ohm_tui.engine import timeutil
from ohm_tui.engine.config import Config
from ohm_tui.engine.model import AgentRecord, ExitInfo, agent_key, session_key, split_command
from ohm_tui.engine.sources import sqlite as db
from ohm_tui.engine.sources.base import Source, SourceKind, SourceRead, SourceWriteError
from ohm_tui.engine.sources.statefile import FUTURE_TOLERANCE, LoopState

ACTIVE = ("spawned", "running")
FINISHED_ROWS = 200  # newest finished rows looked at for crashes the orchestrator closed
CRASH_LOOKBACK = 86400.0  # finished rows older than this are history, not news
SUPERSEDED_SLACK = 2.0  # seconds: a task closed this close to a session's start closed it too
_OUTPUT_COLS = ("stdout_output", "stderr_output")
_WANTED = (
    "agent_id",
    "pid",
    "agent_type",
    "task_id",
    "task_type",
    "priority_number",
    "spawned_at",
    "started_at",
    "completed_at",
    "status",
    "exit_code",
    "command",
    "worktree_path",
    "worktree_branch",
    "error_message",
    "metadata",
)


def _pid_max() -> int:
    try:
        with open("/proc/sys/kernel/pid_max", "rb") as fh:
            return int(fh.read().strip())
    except (OSError, ValueError):
        return 4194304  # the 64-bit kernel's ceiling


PID_MAX = _pid_max()


def is_session(pid: int, command: str) -> bool:
    """A thread of the orchestrator running a ``claude`` session, not a process."""
    return pid > PID_MAX or command.rstrip().endswith("(session)")


def _bounded_output(row: dict[str, Any], limit: int) -> str | None:
    parts = []
    for col in _OUTPUT_COLS:
        text = row.get(col)
        if isinstance(text, str) and text.strip():
            parts.append(text[-limit:])
    err = row.get("error_message")
    if isinstance(err, str) and err.strip():
        parts.append(err[-limit:])
    return "\n".join(parts) if parts else None


class LifecycleSource(Source):
    """``agent_lifecycle`` (+ ``orchestrator_state``) in the orchestrator's database."""

    kind = SourceKind.AGENT_LIFECYCLE
    era = 2

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        self.path = config.database_path
        self.root = str(Path(config.data_dir).expanduser().absolute().parent)
        self._conn: sqlite3.Connection | None = None
        self._cols: list[str] = []
        self._has_state = False
        self._cache: dict[int, tuple[tuple[Any, ...], AgentRecord]] = {}
        self.sessions_seen = False
        self.invocations_present = False
        self.last_heartbeat: LoopState | None = None

    @classmethod
    def detect(cls, config: Config) -> bool:
        return db.has_table(config.database_path, "agent_lifecycle")

    def describe(self) -> str:
        era = 3 if (self.sessions_seen or self.invocations_present) else 2
        return f"agent_lifecycle in {self.path.name} (era {era})"

    def describe_heartbeat(self) -> str | None:
        return f"orchestrator_state in {self.path.name} (heartbeat)" if self._has_state else None

    def owns(self, rec: AgentRecord) -> bool:
        return rec.source in ("lifecycle", "session")

    # ------------------------------------------------------------------ reading
    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            conn = db.connect_ro(self.path)
            cols = db.columns(conn, "agent_lifecycle")
            if not cols:
                conn.close()
                raise sqlite3.OperationalError("no agent_lifecycle table")
            self._cols = cols
            self._has_state = bool(db.columns(conn, "orchestrator_state"))
            self._conn = conn
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def read(self, now: float) -> SourceRead:
        out = SourceRead()
        try:
            conn = self._connection()
            select = ", ".join(c for c in (*_WANTED, *_OUTPUT_COLS) if c in self._cols)
            active = conn.execute(
                f"SELECT {select} FROM agent_lifecycle WHERE status IN ('spawned','running')"
            ).fetchall()
            finished = conn.execute(
                f"SELECT {select} FROM agent_lifecycle WHERE status NOT IN ('spawned','running') "
                "ORDER BY agent_id DESC LIMIT ?",
                (FINISHED_ROWS,),
            ).fetchall()
            if self._has_state:
                out.heartbeat = self.last_heartbeat = self._heartbeat(conn, now)
        except sqlite3.Error as exc:
            self.close()  # reopen next time: the file may have been replaced
            out.error = f"{self.path}: agent_lifecycle unreadable ({exc})"
            return out
        self._build(active, finished, now, out)
        return out

    def _record(self, row: dict[str, Any]) -> AgentRecord:
        sig = tuple(row.get(c) for c in ("pid", "status", "exit_code", "completed_at", "command"))
        sig += tuple(len(row.get(c) or "") for c in _OUTPUT_COLS)
        agent_id = int(row["agent_id"])
        hit = self._cache.get(agent_id)
        if hit is not None and hit[0] == sig:
            return hit[1]
        pid = int(row["pid"])
        command_text = str(row.get("command") or "")
        session = is_session(pid, command_text)
        started = timeutil.to_epoch(row.get("started_at")) or timeutil.to_epoch(
            row.get("spawned_at")
        )
        worktree = row.get("worktree_path") or None
        raw = {k: v for k, v in row.items() if k not in _OUTPUT_COLS}
        raw["ended_at"] = timeutil.to_epoch(row.get("completed_at"))
        log_file: str | None = None
        if "ohm" in str(row.get("metadata") or ""):
            try:
                meta = json.loads(str(row["metadata"]))
            except ValueError:
                meta = None
            if isinstance(meta, dict) and meta.get("respawned_by") == "ohm":
                raw["respawned_by"] = "ohm"  # ohm counts its own runs where it saw them end
                # The run ohm started writes to its own log: its traceback is there.
                if isinstance(meta.get("log_file"), str) and meta["log_file"]:
                    log_file = meta["log_file"]
        rec = AgentRecord(
            key=session_key(pid, started, agent_id) if session else agent_key(pid, started),
            pid=pid,
            agent_type=str(row.get("agent_type") or "unknown"),
            task_id=None if row.get("task_id") in (None, "") else str(row["task_id"]),
            source="session" if session else "lifecycle",
            command=[] if session else split_command(command_text),
            command_text=command_text,
            cwd=str(worktree) if worktree else self.root,
            log_file=log_file,
            started_at=started,
            status=str(row.get("status") or "spawned"),
            exit_code=None if row.get("exit_code") is None else int(row["exit_code"]),
            worktree_path=str(worktree) if worktree else None,
            raw=raw,
            output=_bounded_output(row, self.config.log_tail_bytes),
        )
        self._cache[agent_id] = (sig, rec)
        return rec

    def _build(self, active: list[Any], finished: list[Any], now: float, out: SourceRead) -> None:
        seen_ids: set[int] = set()
        by_key: dict[str, AgentRecord] = {}
        newest_done: dict[str, float] = {}  # task -> when its newest finished row ended
        for r in finished:
            row = dict(r)
            rec = self._record(row)
            seen_ids.add(int(row["agent_id"]))
            ended = rec.raw.get("ended_at")
            if rec.task_id and isinstance(ended, float):
                newest_done[rec.task_id] = max(newest_done.get(rec.task_id, 0.0), ended)
            out.completed.append(rec)
        for r in sorted(active, key=lambda r: int(r["agent_id"])):
            row = dict(r)
            try:
                rec = self._record(row)
            except (TypeError, ValueError) as exc:
                out.warnings.append(f"agent_lifecycle row {row.get('agent_id')} skipped: {exc}")
                continue
            seen_ids.add(int(row["agent_id"]))
            if rec.source == "session":
                self.sessions_seen = True
                done = newest_done.get(rec.task_id or "")
                # Its task's rows finished after it started (a retry), or just as
                # it started (a thread that failed at once closed them first).
                start = rec.started_at
                rec.raw["superseded"] = bool(done and start and done > start)
                rec.raw["closed_as_started"] = bool(
                    done and start and abs(done - start) <= SUPERSEDED_SLACK
                )
            by_key[rec.key] = rec  # the newest row of a run wins
        for rec in out.completed:
            if rec.key in by_key or not self._crash_evidence(rec, now):
                continue
            by_key[rec.key] = rec
            ended = rec.raw.get("ended_at")
            out.exits[rec.key] = ExitInfo(
                pid=rec.pid,
                started_at=rec.started_at,
                ended_at=ended if isinstance(ended, float) else None,
                exit_code=rec.exit_code,
            )
        out.agents = list(by_key.values())
        self._cache = {k: v for k, v in self._cache.items() if k in seen_ids}

    @staticmethod
    def _crash_evidence(rec: AgentRecord, now: float) -> bool:
        """A closed row worth observing: failed, a non-zero exit, or a traceback."""
        if rec.status == "killed" or rec.exit_code == -9:
            return False  # stopped on purpose: not a crash
        ended = rec.raw.get("ended_at")
        if not isinstance(ended, float) or now - ended > CRASH_LOOKBACK:
            return False
        if rec.status == "failed" or rec.exit_code not in (None, 0):
            return True
        return bool(rec.output and "Traceback (most recent call last)" in rec.output)

    def _heartbeat(self, conn: sqlite3.Connection, now: float) -> LoopState:
        loop = LoopState(
            self.path,
            None,
            None,
            {},
            None,
            None,
            None,
            heartbeat=f"the newest orchestrator_state.updated_at in {self.path.name}",
        )
        newest: float | None = None
        bad: list[str] = []
        for row in conn.execute("SELECT key, value, updated_at FROM orchestrator_state"):
            ts = timeutil.to_epoch(row["updated_at"])
            if ts is None:
                bad.append(str(row["key"])[:40])
                continue
            newest = ts if newest is None else max(newest, ts)
            if row["key"] == "last_roadmap_update":
                loop.last_roadmap_update = timeutil.to_epoch(row["value"])
            elif row["key"] == "active_tasks":
                try:
                    tasks = json.loads(row["value"])
                except (TypeError, ValueError):
                    tasks = None
                if isinstance(tasks, dict):
                    loop.active_tasks = tasks
        if newest is not None and newest > now + FUTURE_TOLERANCE:
            loop.problem = f"updated_at is in the future by {int(newest - now)} s (clock skew?)"
            newest = now
        loop.last_update = newest
        if newest is None:
            loop.problem = (
                "orchestrator_state has no rows" if not bad else "no updated_at is a time"
            )
        elif bad:
            loop.problem = f"updated_at of {', '.join(bad)} is not a time"
        return loop

    # ------------------------------------------------------------------ writing
    def write_respawn(self, old: AgentRecord, new: AgentRecord, *, restarted: bool = False) -> None:
        """Register ``new`` as the orchestrator's own spawn does (status ``running``,
        naive local times) and mark the crashed row ``failed``, in one transaction.
        A run an operator restarted is marked ``killed`` (exit -9), as the orchestrator
        marks its own kills: never a crash."""
        if old.source == "session":
            raise SourceWriteError("a session is a thread of the orchestrator: not respawned")
        started = timeutil.iso_local_naive(new.create_time or timeutil.now())
        meta = {"respawned_by": "ohm", "respawn_of": old.key, "log_file": new.log_file}
        values: dict[str, Any] = {
            "pid": new.pid,
            "agent_type": old.agent_type,
            "task_id": old.task_id or "",
            "task_type": old.raw.get("task_type"),
            "priority_number": old.raw.get("priority_number"),
            "spawned_at": started,
            "started_at": started,
            "status": "running",
            "command": shlex.join(new.command) if new.command else new.command_text,
            "worktree_path": old.worktree_path,
            "worktree_branch": old.raw.get("worktree_branch"),
            "metadata": json.dumps(meta),
        }
        old_id = old.raw.get("agent_id")

        def run(conn: sqlite3.Connection) -> None:
            cols = set(db.columns(conn, "agent_lifecycle"))
            names = [c for c in values if c in cols]
            conn.execute(
                f"INSERT INTO agent_lifecycle ({', '.join(names)}) "
                f"VALUES ({', '.join('?' for _ in names)})",
                [values[c] for c in names],
            )
            if old_id is not None:
                if restarted:
                    self._close_row(conn, cols, int(old_id), "killed", -9, started)
                else:
                    self._close_row(conn, cols, int(old_id), "failed", old.exit_code, started)

        self._write(run)

    @staticmethod
    def _close_row(
        conn: sqlite3.Connection,
        cols: set[str],
        agent_id: int,
        status: str,
        exit_code: int | None,
        when: str,
    ) -> bool:
        sets = ["status=?"]
        params: list[Any] = [status]
        if "completed_at" in cols:
            sets.append("completed_at=COALESCE(completed_at, ?)")
            params.append(when)
        if exit_code is not None and "exit_code" in cols:
            sets.append("exit_code=?")
            params.append(exit_code)
        cur = conn.execute(
            f"UPDATE agent_lifecycle SET {', '.join(sets)} "
            "WHERE agent_id=? AND status NOT IN ('killed')",
            [*params, agent_id],
        )
        return cur.rowcount > 0

    def move_stale(self, stale: list[tuple[AgentRecord, str, int | None]], now: float) -> list[int]:
        """Close active rows whose run is gone, by ``agent_id`` (never ``WHERE task_id``,
        which would hit every historical row of the task)."""
        when = timeutil.iso_local_naive(now)
        moved: list[int] = []

        def run(conn: sqlite3.Connection) -> None:
            moved.clear()
            cols = set(db.columns(conn, "agent_lifecycle"))
            for rec, status, code in stale:
                agent_id = rec.raw.get("agent_id")
                if agent_id is None:
                    continue
                row = conn.execute(
                    "SELECT pid, status FROM agent_lifecycle WHERE agent_id=?", (int(agent_id),)
                ).fetchone()
                if row is None or row[0] != rec.pid or row[1] not in ACTIVE:
                    continue  # changed meanwhile: the orchestrator's word wins
                if self._close_row(conn, cols, int(agent_id), status, code, when):
                    moved.append(rec.pid)

        self._write(run)
        return moved

    def _write(self, fn: Any) -> None:
        try:
            db.write(self.path, fn)
        except sqlite3.Error as exc:
            raise SourceWriteError(f"{self.path}: agent_lifecycle not updated ({exc})") from None
        finally:
            self._cache.clear()
