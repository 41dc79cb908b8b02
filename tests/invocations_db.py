"""A real era-3 ``data/claude_invocations.db`` and ``agent_lifecycle`` table, written as the
orchestrator writes them (see ``../shared/notes/interop.md``).

The invocations schema is the orchestrator's own DDL, indexes included; its times
are naive **UTC** ISO (``datetime.utcnow().isoformat()``: no fraction when it is
zero). ``agent_lifecycle`` (in ``orchestrator.db``) holds naive **local** times.
A call is inserted ``running`` and completed later, as the invoker does.
"""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ohm_tui.demo.lifecycle_db import LIFECYCLE_COLUMNS

INVOCATIONS_DDL = """
CREATE TABLE IF NOT EXISTS claude_invocations (
    invocation_id INTEGER PRIMARY KEY AUTOINCREMENT,
    session_id TEXT,
    agent_type TEXT NOT NULL,
    prompt TEXT NOT NULL,
    system_prompt TEXT,

    -- Response data
    content TEXT,               -- Final aggregated response
    final_result TEXT,          -- Final exit message/result (for streaming)
    model TEXT,

    -- Metrics
    input_tokens INTEGER,
    output_tokens INTEGER,
    cost_usd REAL,
    duration_ms INTEGER,

    -- Status
    status TEXT NOT NULL,  -- success, error, timeout
    stop_reason TEXT,
    error TEXT,

    -- Timestamps
    invoked_at TEXT NOT NULL,
    completed_at TEXT,

    -- Metadata
    working_dir TEXT,
    streaming BOOLEAN DEFAULT 0,
    metadata TEXT  -- JSON
);
CREATE TABLE IF NOT EXISTS claude_stream_messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    invocation_id INTEGER NOT NULL,
    message_type TEXT NOT NULL,  -- init, message, tool_use, tool_result, result
    sequence INTEGER NOT NULL,
    timestamp TEXT NOT NULL,
    content TEXT,
    metadata TEXT,  -- JSON
    FOREIGN KEY (invocation_id) REFERENCES claude_invocations(invocation_id)
);
CREATE INDEX IF NOT EXISTS idx_invocations_agent_type ON claude_invocations(agent_type);
CREATE INDEX IF NOT EXISTS idx_invocations_session ON claude_invocations(session_id);
CREATE INDEX IF NOT EXISTS idx_stream_messages_invocation ON claude_stream_messages(invocation_id);
"""

# The orchestrator's agent_lifecycle, as the demo's fake orchestrator writes it (the
# earliest version: no output columns).
LIFECYCLE_DDL = f"CREATE TABLE IF NOT EXISTS agent_lifecycle ({LIFECYCLE_COLUMNS});"

THREAD_IDENT = 140_245_812_345_600  # a thread identifier, beyond any pid_max


def utc_naive(ts: float) -> str:
    """The invoker's ``datetime.utcnow().isoformat()`` for an epoch time."""
    return datetime.fromtimestamp(ts, UTC).replace(tzinfo=None).isoformat()


def local_naive(ts: float) -> str:
    """The work loop's ``datetime.now().isoformat()`` for an epoch time."""
    return datetime.fromtimestamp(ts).isoformat()


class InvocationsDB:
    """``data/claude_invocations.db`` written call by call, as the invoker writes it."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / "claude_invocations.db"
        with closing(sqlite3.connect(self.path)) as conn:
            conn.executescript(INVOCATIONS_DDL)
            conn.commit()

    def call(
        self,
        agent_type: str,
        *,
        invoked: float,
        completed: float | None,
        input_tokens: int = 0,
        output_tokens: int = 0,
        cost_usd: float = 0.0,
        status: str = "success",
        error: str | None = None,
        working_dir: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> int:
        """One call: inserted ``running``; completed (tokens, cost, status) unless still open."""
        with closing(sqlite3.connect(self.path)) as conn:
            cur = conn.execute(
                "INSERT INTO claude_invocations "
                "(agent_type, prompt, system_prompt, working_dir, status, invoked_at) "
                "VALUES (?, ?, ?, ?, 'running', ?)",
                (agent_type, f"Use the {agent_type} agent", None, working_dir, utc_naive(invoked)),
            )
            rowid = int(cur.lastrowid or 0)
            if metadata is not None:
                conn.execute(
                    "UPDATE claude_invocations SET metadata = ? WHERE invocation_id = ?",
                    (json.dumps(metadata), rowid),
                )
            if completed is not None:
                conn.execute(
                    "UPDATE claude_invocations SET content = ?, final_result = ?, model = ?, "
                    "input_tokens = ?, output_tokens = ?, cost_usd = ?, duration_ms = ?, "
                    "session_id = ?, status = ?, stop_reason = ?, error = ?, completed_at = ? "
                    "WHERE invocation_id = ?",
                    (
                        "done",
                        None,
                        "sonnet",
                        input_tokens,
                        output_tokens,
                        cost_usd,
                        int((completed - invoked) * 1000),
                        f"sess-{rowid}",
                        status,
                        "error" if status != "success" else "end_turn",
                        error,
                        utc_naive(completed),
                        rowid,
                    ),
                )
            conn.commit()
        return rowid


def add_session_run(
    data_dir: Path,
    agent_type: str,
    task_id: str,
    *,
    started: float,
    completed: float | None = None,
    worktree: str | None = None,
    status: str = "running",
) -> None:
    """One ``agent_lifecycle`` row of a session agent (thread ident as pid, naive local times)."""
    with closing(sqlite3.connect(data_dir / "orchestrator.db")) as conn:
        conn.executescript(LIFECYCLE_DDL)
        conn.execute(
            "INSERT INTO agent_lifecycle (pid, agent_type, task_id, spawned_at, started_at, "
            "completed_at, status, command, worktree_path) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                THREAD_IDENT,
                agent_type,
                task_id,
                local_naive(started),
                local_naive(started),
                None if completed is None else local_naive(completed),
                status,
                f"claude --agent {agent_type} (session)",
                worktree,
            ),
        )
        conn.commit()
