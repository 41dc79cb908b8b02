"""Era 3: agents are threads of the orchestrator ("sessions"), each running the
``claude`` CLI as the orchestrator's child; every call is a row of
``claude_invocations`` (naive UTC). The orchestrator here is a real process
(``session_orch.py``) running the shipped fake ``claude``: calls really fail,
time out and hang."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ohm_tui import OrchestratorHealthMonitor
from ohm_tui.cli.check import render_report
from ohm_tui.demo.lifecycle_db import InvocationsDB, LifecycleDB, local_now
from ohm_tui.engine import timeutil
from ohm_tui.engine.monitor import NotAProcessError
from ohm_tui.engine.sources.sessions import NOT_RESPAWNED
from ohm_tui.engine.system import procs
from tests.helpers import wait_until

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
PLAN = [
    ["code_developer", "impl-1", "crash-runtime"],  # a call fails: error text
    ["project_manager", "status-1", "crash-timeout"],  # a call times out
    ["assistant", "demo-1", "hang"],  # a call never returns: stuck
    ["architect", "spec-20", "crash-import"],  # fails at once: its row stays running
    ["code_reviewer", "review-1", "complete"],  # two good calls
]


@pytest.fixture
def orchestrator(data_dir: Path) -> Iterator[subprocess.Popen[bytes]]:
    db = LifecycleDB(data_dir)
    # An earlier session of spec-20, which the failing one closes as it starts.
    db.register(2**40 + 7, "architect", "spec-20", "claude --agent architect (session)")
    proc = subprocess.Popen(
        [
            sys.executable,
            str(HERE / "session_orch.py"),
            "orchestrator",
            "start",
            str(data_dir),
            json.dumps(PLAN),
            "60",
        ],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _cfg(data_dir: Path) -> dict[str, Any]:
    return {
        "orchestrator_match": [str(HERE / "session_orch.py"), str(data_dir)],
        "claude_timeout": 1.0,
    }


def test_era3_sessions_failures_stuck_stale_and_children(
    data_dir: Path, orchestrator: subprocess.Popen[bytes], monitor: Any
) -> None:
    proc = orchestrator
    mon: OrchestratorHealthMonitor = monitor(**_cfg(data_dir))

    def seen(kinds: set[str]) -> bool:
        report = mon.check()
        mon.auto_fix_issues(report)
        found = {i.task_id for i in report.issues if i.type == "agent_crash"}
        stuck = [i for i in report.issues if i.details.get("kind") == "session_stuck"]
        return kinds <= found and bool(stuck)

    wait_until(lambda: seen({"impl-1", "status-1"}), timeout=30, interval=0.05)
    report = mon.check()
    assert "agent_lifecycle in orchestrator.db (era 3)" in report.sources
    assert "claude_invocations in claude_invocations.db (era 3)" in report.sources
    (stuck,) = [i for i in report.issues if i.details.get("kind") == "session_stuck"]
    assert stuck.agent_type == "assistant"
    open_for = int(stuck.error.split("open for ")[1].split(" s")[0])
    assert open_for < 30  # naive UTC read as UTC: not 14 hours in Kiritimati
    view = {a.task_id: a for a in mon.snapshot().agents}
    assistant = view["demo-1"]
    assert assistant.status == "stalled" and assistant.source == "session"
    assert assistant.children, "the hung claude process is shown under its session"
    for pid in assistant.children:
        raw = procs.read_proc(pid)
        assert raw is not None and raw.ppid == proc.pid
        assert any(Path(a).name == "claude" for a in (procs.cmdline(pid) or [])[:2])

    crashes = {c.task_id: c for c in mon.crashes()}
    assert "Overloaded" in (crashes["impl-1"].error_message or "")
    assert "timed out" in (crashes["status-1"].error_message or "")
    assert crashes["status-1"].error_type == "ClaudeTimeout"
    # No traceback in a failed call: its cause is named from the API's error.
    assert "overloaded (HTTP 529)" in (crashes["impl-1"].root_cause or "")
    assert "ran past its timeout" in (crashes["status-1"].root_cause or "")
    for c in crashes.values():
        assert c.action_taken == NOT_RESPAWNED
        assert c.error_type != "ProcessGone"
    assert not [e for e in mon.events(limit=500) if e.kind in ("respawned", "respawn_failed")]

    # The session that failed at once: its earlier row is a crash with its error,
    # its own "running" row is stale and gets closed (by agent_id, not task).
    def spec20_running() -> bool:
        mon.auto_fix_issues(mon.check())
        return bool(
            LifecycleDB(data_dir).execute(
                "SELECT 1 FROM agent_lifecycle WHERE task_id='spec-20' AND status='running'"
            )
        )

    wait_until(lambda: not spec20_running(), timeout=15, interval=0.05)
    (closed,) = LifecycleDB(data_dir).execute(
        "SELECT status FROM agent_lifecycle WHERE task_id='spec-20' ORDER BY agent_id DESC LIMIT 1"
    )
    assert closed[0] == "completed"  # stale, not a crash: closed as the orchestrator does
    assert "ImportError" in ({c.task_id: c for c in mon.crashes()}["spec-20"].error_type or "")
    # A session is never signalled.
    with pytest.raises(NotAProcessError, match="session"):
        mon.stop_agent(assistant.key)
    assert proc.poll() is None
    ok = {a.task_id: a.status for a in mon.snapshot().agents}
    assert ok.get("review-1") in (None, "running", "completed")


def test_era3_session_is_never_called_a_crash_for_lack_of_a_process(
    data_dir: Path, monitor: Any
) -> None:
    db = LifecycleDB(data_dir)
    db.heartbeat()
    db.register(
        2**40 + 1, "architect", "spec-3", "claude --agent architect (session)", status="running"
    )
    mon: OrchestratorHealthMonitor = monitor(heartbeat_interval=0.01)
    for _ in range(3):
        report = mon.check()
    assert report.active_agents == 1
    assert not [i for i in report.issues if i.type in ("agent_crash", "zombie")]
    assert mon.crashes() == []


def test_era3_frozen_heartbeat_with_sessions_is_critical(data_dir: Path, monitor: Any) -> None:
    """Scenario 2 in era 3: the same orchestrator_state heartbeat, 89 minutes old."""
    db = LifecycleDB(data_dir)
    db.heartbeat()
    db.register(
        2**40 + 2, "architect", "spec-4", "claude --agent architect (session)", status="running"
    )
    db.set_heartbeat_time(timeutil.iso_local_naive(timeutil.now() - 89 * 60))
    report = monitor().check()
    assert report.status == "critical"
    assert abs((report.orchestrator_last_poll or 0) - 89 * 60) < 30


def test_era3_respawn_of_a_session_says_why_not(data_dir: Path, monitor: Any) -> None:
    db = LifecycleDB(data_dir)
    agent_id = db.register(
        2**40 + 3, "architect", "spec-5", "claude --agent architect (session)", status="running"
    )
    db.close_task("spec-5", "failed", error_message="RuntimeError: session died")
    mon: OrchestratorHealthMonitor = monitor()
    mon.check()
    (crash,) = mon.crashes()
    assert crash.action_taken == NOT_RESPAWNED
    # Refused before anything runs (the console greys r and k out): no failed respawn,
    # no respawn_failed issue, no bug saying "nothing runs this task now".
    for act in (mon.respawn, mon.respawn_plan, mon.stop_agent):
        with pytest.raises(NotAProcessError, match="thread of the orchestrator"):
            act(crash.agent_key)
    assert not [e for e in mon.events() if e.kind in ("respawn_failed", "stopped")]
    assert all(b.issue_type != "respawn_failed" for b in mon.bugs("all"))
    # Refused, not a respawn: no rate to show ("n/a", not "0%").
    report = monitor().check()
    assert report.respawn_success_rate is None
    assert "respawn success n/a" in render_report(report, str(data_dir))
    assert not [i for i in report.issues if i.type == "respawn_failed"]
    conn = sqlite3.connect(db.path)
    try:
        assert conn.execute("SELECT COUNT(*) FROM agent_lifecycle").fetchone()[0] == 1
        assert (
            conn.execute(
                "SELECT status FROM agent_lifecycle WHERE agent_id=?", (agent_id,)
            ).fetchone()[0]
            == "failed"
        )
    finally:
        conn.close()


def test_a_recycled_thread_id_is_two_sessions_and_a_call_fails_only_its_own(
    data_dir: Path, monitor: Any
) -> None:
    """Python hands a thread id to the next thread at once: two sessions on one
    recycled thread, started in the same second, are two agents. A failed call that
    names its task is a crash of that session only, once, and stays its own after
    the session ended (never handed to one running beside it)."""
    db = LifecycleDB(data_dir)
    db.heartbeat()
    calls = InvocationsDB(data_dir)
    tid, at = 2**40 + 11, local_now()
    cmd = "claude --agent architect (session)"
    db.register(tid, "architect", "spec-20", cmd, status="running", spawned_at=at)
    failing = db.register(tid, "architect", "spec-22", cmd, status="running", spawned_at=at)
    db.register(tid + 1, "architect", "spec-2", cmd, status="running", spawned_at=at)
    call = calls.start("architect", "write the spec", session_id=f"spec-22-{tid}")
    calls.finish(call, "error", error="API Error: 529 overloaded")
    mon: OrchestratorHealthMonitor = monitor(heartbeat_interval=0.01)

    def crashed_tasks() -> list[str | None]:
        return sorted(c.task_id for c in mon.crashes())

    mon.check()
    assert crashed_tasks() == ["spec-22"]
    views = {a.task_id: a.status for a in mon.snapshot().agents}
    assert views["spec-20"] == "running" and views["spec-2"] == "running", views
    assert len({a.key for a in mon.snapshot().agents}) == 3

    # spec-22's session ends; its failed call must not become spec-20's or spec-2's.
    db.execute(
        "UPDATE agent_lifecycle SET status='completed', completed_at=? WHERE agent_id=?",
        (local_now(), failing),
    )
    for _ in range(3):
        mon.check()
    assert crashed_tasks() == ["spec-22"]
    assert not [
        a for a in mon.snapshot().agents if a.status == "crashed" and a.task_id != "spec-22"
    ]
