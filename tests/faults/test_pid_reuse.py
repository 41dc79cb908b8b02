"""PID reuse: the state file lists a PID that now belongs to an unrelated live process.

ohm must treat the agent as gone, never signal that process, and never show its
CPU or memory as the agent's. Two real cases: an entry whose agent died long ago
(its PID taken since), and a true reuse made on purpose: the agent dies and the
very next process the kernel starts gets its PID (``ns_last_pid``, as root).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ohm_tui import OrchestratorHealthMonitor
from ohm_tui.engine import timeutil
from tests.faults.kit import MonitorFactory, Orchestrator, count, event_kinds, q
from tests.helpers import wait_until

# Busy and holding memory: anything ohm showed from it would be visible.
BUSY = ["/bin/sh", "-c", "x=$(head -c 2000000 /dev/zero | tr '\\0' a); while :; do :; done"]
NS_LAST_PID = Path("/proc/sys/kernel/ns_last_pid")


@pytest.fixture
def stranger() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Unrelated processes the test starts; killed (they are our children) at the end."""
    made: list[subprocess.Popen[bytes]] = []
    yield made
    for p in made:
        with contextlib.suppress(OSError):
            p.kill()
        p.wait()


def assert_never_shown_as_agent(
    mon: OrchestratorHealthMonitor, pid: int, *, listed: bool = True
) -> None:
    views = [v for v in mon.snapshot().agents if v.pid == pid]
    if listed:
        assert views, "the entry is still shown (as gone)"
    for v in views:
        assert v.status != "running"
        assert v.cpu_percent is None and v.rss_bytes is None


def test_long_dead_agent_pid_now_an_unrelated_process(
    orch: Orchestrator, ohm: MonitorFactory, stranger: list[subprocess.Popen[bytes]]
) -> None:
    u = subprocess.Popen(BUSY)
    stranger.append(u)
    long_ago = time.time() - 3600
    orch.extra_entries[str(u.pid)] = {
        "pid": u.pid,
        "agent_type": "architect",
        "task_id": "spec-20",
        "command": "poetry run architect create-spec --priority=20 --auto-approve",
        "started_at": timeutil.iso_local_naive(long_ago),
        "status": "running",
    }
    orch.write()
    mon = ohm()
    mon.check()
    # Never signalled, even when asked to stop "that agent" by hand.
    result = mon.stop_agent(u.pid)
    assert not result.ok and "not signalled" in result.message
    assert u.poll() is None
    for i in range(3):
        report = mon.check()
        assert report.active_agents == 0
        assert_never_shown_as_agent(mon, u.pid, listed=i == 0)
        mon.auto_fix_issues(report)
        mon.report_bugs_if_any(report)
    # Gone: its entry is moved to completed_agents (nothing to respawn: never seen alive).
    doc = json.loads(orch.state_path.read_text())
    assert str(u.pid) not in doc["active_agents"]
    assert [e["pid"] for e in doc["completed_agents"]] == [u.pid]
    assert u.poll() is None
    assert "respawned" not in event_kinds(mon.config.database_path)


def _take_pid(pid: int, argv: list[str], tries: int = 50) -> subprocess.Popen[bytes] | None:
    """Start ``argv`` so that it gets ``pid``: a real PID reuse, made on purpose."""
    for _ in range(tries):
        try:
            NS_LAST_PID.write_text(str(pid - 1))
        except OSError:
            return None
        p = subprocess.Popen(argv)
        if p.pid == pid:
            return p
        p.kill()
        p.wait()
    return None


def test_pid_reused_right_after_the_agent_died(
    orch: Orchestrator, ohm: MonitorFactory, stranger: list[subprocess.Popen[bytes]]
) -> None:
    if not os.access(NS_LAST_PID, os.W_OK) or os.geteuid() != 0:
        pytest.skip("needs root and a writable /proc/sys/kernel/ns_last_pid to reuse a PID")
    agent = orch.start("architect", "spec-20")
    # Respawns would go through the runner: keep this case about the reused PID only.
    mon = ohm(max_respawn_attempts=0, respawn_backoff_base=60.0)
    report = mon.check()
    assert report.active_agents == 1
    (view,) = [v for v in mon.snapshot().agents if v.pid == agent.pid]
    assert view.status == "running"

    # The agent works for a moment, watched (start times have 10 ms ticks: a PID
    # reused within the same tick is not a case any start-time check can see).
    wait_until(lambda: mon.check() and time.time() - agent.started > 0.3, timeout=5)
    pid = agent.pid
    agent.crash()
    u = _take_pid(pid, BUSY)
    if u is None:
        pytest.skip("could not get the kernel to hand out the same PID again")
    stranger.append(u)
    assert u.pid == pid and u.poll() is None

    wait_until(lambda: mon.check() and mon.crashes(), timeout=5, message="agent seen as gone")
    assert_never_shown_as_agent(mon, pid)
    (crash,) = mon.crashes()
    assert crash.agent_key == agent.key
    mon.auto_fix_issues()
    mon.report_bugs_if_any()
    result = mon.stop_agent(agent.key)
    assert not result.ok
    assert u.poll() is None  # never signalled
    db_path = mon.config.database_path
    assert count(db_path, "SELECT COUNT(*) FROM agent_crashes") == 1
    msgs = [m for (m,) in q(db_path, "SELECT message FROM ohm_events WHERE kind='stopped'")]
    assert msgs and all("not signalled" in m for m in msgs)
