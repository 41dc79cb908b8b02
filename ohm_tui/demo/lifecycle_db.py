"""The real orchestrator's SQLite writes (eras 2 and 3), reproduced from its
facts (see the interop notes): stdlib only, so it behaves like a foreign program.

- ``agent_lifecycle``: one row per spawn, ``spawned`` at spawn (never ``running``
  in era 2); the early cleanup closes a gone PID as ``completed`` with a NULL
  exit code; later versions poll their handle and write ``exit_code``,
  ``stdout_output``/``stderr_output`` and ``completed``/``failed``. Updates by
  task are ``WHERE task_id=?`` and hit every historical row of that task.
- ``orchestrator_state``: ``INSERT OR REPLACE`` of its keys each cycle.
- Times are naive **local** ISO (``datetime.now().isoformat()``).
- Era 3 sessions: rows whose ``pid`` is a thread identifier, and one row per
  ``claude`` call in ``claude_invocations.db`` with naive **UTC** times.
"""

from __future__ import annotations

import json
import os
import sqlite3
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

LIFECYCLE_COLUMNS = """
    agent_id INTEGER PRIMARY KEY AUTOINCREMENT,
    pid INTEGER NOT NULL,
    agent_type TEXT NOT NULL,
    task_id TEXT NOT NULL,
    task_type TEXT,
    priority_number INTEGER,
    spawned_at TEXT NOT NULL,
    started_at TEXT,
    completed_at TEXT,
    status TEXT NOT NULL,
    exit_code INTEGER,
    duration_ms INTEGER,
    idle_time_ms INTEGER,
    command TEXT NOT NULL,
    worktree_path TEXT,
    worktree_branch TEXT,
    merged_at TEXT,
    cleaned_at TEXT,
    merge_duration_ms INTEGER,
    cleanup_duration_ms INTEGER,
    error_message TEXT,
    metadata TEXT"""
OUTPUT_COLUMNS = """,
    stdout_output TEXT,
    stderr_output TEXT"""

INVOCATIONS_SCHEMA = """
CREATE TABLE IF NOT EXISTS claude_invocations (
    invocation_id INTEGER PRIMARY KEY AUTOINCREMENT,
    session_id TEXT, agent_type TEXT, prompt TEXT, system_prompt TEXT, content TEXT,
    final_result TEXT, model TEXT, input_tokens INTEGER, output_tokens INTEGER,
    cost_usd REAL, duration_ms INTEGER, status TEXT, stop_reason TEXT, error TEXT,
    invoked_at TEXT, completed_at TEXT, working_dir TEXT, streaming INTEGER, metadata TEXT)"""
STREAM_SCHEMA = """
CREATE TABLE IF NOT EXISTS claude_stream_messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT, invocation_id INTEGER, message_type TEXT,
    sequence INTEGER, timestamp TEXT, content TEXT, metadata TEXT)"""


def local_now() -> str:
    """The orchestrator's own time form: naive local ISO."""
    return datetime.now().isoformat()


def utc_now() -> str:
    """claude_invocations' time form: naive UTC ISO."""
    return datetime.now(UTC).replace(tzinfo=None).isoformat()


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(str(path), timeout=10.0, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    return conn


class LifecycleDB:
    """``data/orchestrator.db`` as the orchestrator writes it."""

    def __init__(self, data_dir: Path, *, with_output: bool = True) -> None:
        self.path = Path(data_dir) / "orchestrator.db"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.with_output = with_output  # later versions keep the handle's output
        conn = _connect(self.path)
        try:
            cols = LIFECYCLE_COLUMNS + (OUTPUT_COLUMNS if with_output else "")
            conn.execute(f"CREATE TABLE IF NOT EXISTS agent_lifecycle ({cols})")
            conn.execute(
                "CREATE VIEW IF NOT EXISTS active_agents AS SELECT * FROM agent_lifecycle "
                "WHERE status IN ('spawned','running')"
            )
            conn.execute(
                "CREATE TABLE IF NOT EXISTS orchestrator_state "
                "(key TEXT PRIMARY KEY, value TEXT NOT NULL, updated_at TEXT NOT NULL)"
            )
        finally:
            conn.close()

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        conn = _connect(self.path)
        try:
            return conn.execute(sql, params).fetchall()
        finally:
            conn.close()

    def register(
        self,
        pid: int,
        agent_type: str,
        task_id: str,
        command: str,
        *,
        task_type: str | None = None,
        priority_number: int | None = None,
        worktree_path: str | None = None,
        status: str = "spawned",
        spawned_at: str | None = None,
    ) -> int:
        """One row per spawn (the orchestrator's registration)."""
        at = spawned_at or local_now()
        conn = _connect(self.path)
        try:
            cur = conn.execute(
                "INSERT INTO agent_lifecycle (pid, agent_type, task_id, task_type, "
                "priority_number, spawned_at, started_at, status, command, worktree_path, "
                "metadata) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (
                    pid,
                    agent_type,
                    task_id,
                    task_type,
                    priority_number,
                    at,
                    at,
                    status,
                    command,
                    worktree_path,
                    json.dumps({}),
                ),
            )
            return int(cur.lastrowid or 0)
        finally:
            conn.close()

    def close_task(
        self,
        task_id: str,
        status: str,
        *,
        exit_code: int | None = None,
        stdout: str | None = None,
        stderr: str | None = None,
        error_message: str | None = None,
    ) -> None:
        """Its updates are by task: every historical row of the task changes."""
        sets = "status=?, completed_at=?, exit_code=?, error_message=?"
        params: list[Any] = [status, local_now(), exit_code, error_message]
        if self.with_output:
            sets += ", stdout_output=?, stderr_output=?"
            params += [stdout, stderr]
        self.execute(f"UPDATE agent_lifecycle SET {sets} WHERE task_id=?", (*params, task_id))

    def cleanup_gone(self) -> list[str]:
        """The early cleanup: a gone PID is ``completed`` with a NULL exit code."""
        gone = []
        for pid, task in self.execute(
            "SELECT pid, task_id FROM agent_lifecycle WHERE status IN ('spawned','running')"
        ):
            if not _pid_alive(int(pid)):
                gone.append(str(task))
                self.close_task(str(task), "completed")
        return gone

    def kill(self, task_id: str) -> None:
        self.execute(
            "UPDATE agent_lifecycle SET status='killed', exit_code=-9, completed_at=? "
            "WHERE task_id=?",
            (local_now(), task_id),
        )

    def heartbeat(self, **values: Any) -> None:
        """``INSERT OR REPLACE`` of its keys, as each cycle does."""
        now = local_now()
        values.setdefault("last_roadmap_update", now)
        values.setdefault("orchestrator_start_time", now)
        conn = _connect(self.path)
        try:
            for key, value in values.items():
                text = value if isinstance(value, str) else json.dumps(value)
                conn.execute(
                    "INSERT OR REPLACE INTO orchestrator_state (key, value, updated_at) "
                    "VALUES (?,?,?)",
                    (key, text, now),
                )
        finally:
            conn.close()

    def set_heartbeat_time(self, updated_at: str) -> None:
        self.execute("UPDATE orchestrator_state SET updated_at=?", (updated_at,))


class InvocationsDB:
    """``data/claude_invocations.db``: one row per ``claude`` call, naive UTC times."""

    def __init__(self, data_dir: Path) -> None:
        self.path = Path(data_dir) / "claude_invocations.db"
        conn = _connect(self.path)
        try:
            conn.execute(INVOCATIONS_SCHEMA)
            conn.execute(STREAM_SCHEMA)
        finally:
            conn.close()

    def start(self, agent_type: str, prompt: str, *, session_id: str | None = None) -> int:
        conn = _connect(self.path)
        try:
            cur = conn.execute(
                "INSERT INTO claude_invocations (session_id, agent_type, prompt, model, "
                "invoked_at, working_dir, streaming) VALUES (?,?,?,?,?,?,0)",
                (
                    session_id or uuid.uuid4().hex,
                    agent_type,
                    prompt,
                    "claude-sonnet-4",
                    utc_now(),
                    os.getcwd(),
                ),
            )
            return int(cur.lastrowid or 0)
        finally:
            conn.close()

    def finish(
        self,
        invocation_id: int,
        status: str,
        *,
        error: str | None = None,
        result: str | None = None,
        input_tokens: int = 0,
        output_tokens: int = 0,
        cost_usd: float = 0.0,
        duration_ms: int = 0,
    ) -> None:
        conn = _connect(self.path)
        try:
            conn.execute(
                "UPDATE claude_invocations SET status=?, error=?, final_result=?, "
                "input_tokens=?, output_tokens=?, cost_usd=?, duration_ms=?, completed_at=? "
                "WHERE invocation_id=?",
                (
                    status,
                    error,
                    result,
                    input_tokens,
                    output_tokens,
                    cost_usd,
                    duration_ms,
                    utc_now(),
                    invocation_id,
                ),
            )
        finally:
            conn.close()


def _pid_alive(pid: int) -> bool:
    """Alive and not a zombie (a zombie is dead)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            data = fh.read()
    except OSError:
        return False
    return data[data.rfind(b")") + 2 : data.rfind(b")") + 3] not in (b"Z", b"X")
