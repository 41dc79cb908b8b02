"""Zombies: a real Z-state child of a parent that never reaps is detected and reported
with its parent (and that parent is left alone); zombies that are ohm's own children
are reaped, never reported."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator

import psutil
import pytest

from ohm_tui.engine import timeutil
from tests.faults.kit import MonitorFactory, Orchestrator, event_kinds
from tests.helpers import wait_until

# A careless orchestrator: forks two agents that exit at once and never waits for them.
CARELESS = textwrap.dedent(
    """\
    import os, sys
    kids = []
    for code in (3, 0):
        pid = os.fork()
        if pid == 0:
            os._exit(code)
        kids.append(pid)
    print(" ".join(map(str, kids)), flush=True)
    sys.stdin.read()  # lives (never reaping) until the test closes stdin
    """
)


@pytest.fixture
def careless() -> Iterator[tuple[subprocess.Popen[str], list[int], str]]:
    tag = f"fault-orchestrator-{uuid.uuid4().hex[:8]}"
    parent = subprocess.Popen(
        [sys.executable, "-c", CARELESS, tag, "start"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert parent.stdout is not None
    kids = [int(x) for x in parent.stdout.readline().split()]
    try:
        yield parent, kids, tag
    finally:
        if parent.stdin is not None:
            parent.stdin.close()  # it exits; init reaps its zombies
        parent.wait(timeout=10)


def test_zombie_of_a_careless_parent_is_reported_with_its_parent(
    orch: Orchestrator,
    ohm: MonitorFactory,
    careless: tuple[subprocess.Popen[str], list[int], str],
) -> None:
    parent, (listed, unlisted), tag = careless
    wait_until(
        lambda: all(psutil.Process(k).status() == psutil.STATUS_ZOMBIE for k in (listed, unlisted))
    )
    started = psutil.Process(listed).create_time()
    orch.extra_entries[str(listed)] = {
        "pid": listed,
        "agent_type": "code_developer",
        "task_id": "impl-z",
        "command": "poetry run code-developer --task impl-z",
        "started_at": timeutil.iso_local_naive(started),
        "status": "running",
    }
    orch.write()
    mon = ohm(orchestrator_match=[tag, "start"], zombie_issue_after=0.3, zombie_bug_after=0.3)

    def zombie_issues() -> list[dict[str, object]]:
        report = mon.check()
        return [i.to_dict() for i in report.issues if i.type == "zombie"]

    # A process is a zombie until its parent's next cycle: only a lingering one is news.
    wait_until(lambda: len(zombie_issues()) >= 2, timeout=6, message="both zombies reported")
    found = {int(str(i["agent_pid"])): i for i in zombie_issues() if i["agent_pid"]}
    assert found[listed]["details"]["ppid"] == parent.pid  # type: ignore[index]
    assert found[unlisted]["details"]["ppid"] == parent.pid  # type: ignore[index]
    assert f"parent {parent.pid}" in str(found[unlisted]["error"])
    assert found[listed]["agent_type"] == "code_developer"

    plan = mon.plan_zombie_cleanup()
    assert any(f"report parent {parent.pid}" in line for line in plan), plan
    mon.auto_fix_issues()
    bugs = mon.report_bugs_if_any()
    assert bugs and any(b.priority == "Low" for b in mon.bugs())
    # The parent is neither signalled nor reaped for: it and its zombies are still there.
    assert parent.poll() is None
    assert psutil.Process(unlisted).status() == psutil.STATUS_ZOMBIE
    assert "respawned" not in event_kinds(mon.config.database_path)
    # A zombie is dead: the exit status it carries is its exit code, so it is a crash.
    (crash,) = mon.crashes()
    assert (crash.agent_pid, crash.exit_code) == (listed, 3)
    doc = json.loads(orch.state_path.read_text())
    assert str(listed) not in doc["active_agents"]  # its entry is cleaned like any dead one
    assert any(e.get("pid") == listed for e in doc["completed_agents"])


def test_ohm_reaps_its_own_children(ohm: MonitorFactory) -> None:
    """Agents ohm starts run under its runner; when they end, no zombie is left and
    nothing of ohm's own is reported as one."""
    # Exit codes come from the runners' exit records here, never from a timeout.
    mon = ohm(heartbeat_interval=5.0)
    views = [
        mon.spawn_agent(["/bin/sh", "-c", f"exit {code}"], agent_type="worker", task_id=f"t{code}")
        for code in (0, 0, 5)
    ]
    me = psutil.Process()

    def runner_zombies() -> list[int]:
        return [c.pid for c in me.children() if c.status() == psutil.STATUS_ZOMBIE]

    def settled() -> bool:
        report = mon.check()
        assert not [i for i in report.issues if i.type == "zombie"], report.issues
        reaped = mon.spawner.child_count() <= 1 and not runner_zombies()  # at most the idle spare
        return reaped and bool(mon.crashes())

    wait_until(settled, timeout=5, message="runners reaped")
    for v in views:
        assert not psutil.pid_exists(v.pid) or psutil.Process(v.pid).ppid() != me.pid
    assert [c.exit_code for c in mon.crashes()] == [5]
