"""The design card's three scenarios, end to end, with real processes and files."""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ohm_tui import OrchestratorHealthMonitor
from ohm_tui.engine import timeutil
from tests.helpers import wait_until

ROOT_CAUSE = "Missing SkillNames export in coffee_maker/autonomous/skill_loader.py"


def make_project(root: Path) -> Path:
    """A tiny project whose architect agent really fails at import."""
    pkg = root / "proj" / "coffee_maker" / "autonomous"
    pkg.mkdir(parents=True)
    (root / "proj" / "coffee_maker" / "__init__.py").touch()
    (pkg / "__init__.py").touch()
    (pkg / "skill_loader.py").write_text("def load():\n    return []\n")
    (pkg / "architect.py").write_text(
        textwrap.dedent(
            """\
            import sys
            print("architect starting", flush=True)
            from coffee_maker.autonomous.skill_loader import SkillNames
            """
        )
    )
    return root / "proj"


def base_config(tmp_path: Path, **extra: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "data_dir": str(tmp_path / "data"),
        "respawn_backoff_base": 0.2,
        "respawn_backoff_factor": 2.0,
        "health_check_interval": 0.2,
        "orchestrator_match": ["no-such-orchestrator-for-this-test"],
        "tickets_dir": "tickets",
    }
    cfg.update(extra)
    return cfg


@pytest.fixture
def monitor_factory(tmp_path: Path) -> Iterator[Any]:
    made: list[OrchestratorHealthMonitor] = []

    def make(**extra: Any) -> OrchestratorHealthMonitor:
        m = OrchestratorHealthMonitor(base_config(tmp_path, **extra))
        made.append(m)
        return m

    yield make
    for m in made:
        m.close()


def kill_spawned(mon: OrchestratorHealthMonitor) -> None:
    for ev in mon.events(limit=1000):
        if ev.kind in ("respawned", "spawned", "restart_started") and ev.agent_pid:
            with contextlib.suppress(OSError):
                os.kill(ev.agent_pid, 9)


def test_scenario_1_import_error_respawned_three_times_then_one_high_bug(
    tmp_path: Path, monitor_factory: Any
) -> None:
    proj = make_project(tmp_path)
    mon: OrchestratorHealthMonitor = monitor_factory(respawn_backoff_base=0.5)
    mon.start()
    try:
        mon.spawn_agent(
            [sys.executable, "-m", "coffee_maker.autonomous.architect"],
            agent_type="architect",
            task_id="spec-20",
            cwd=proj,
        )
        wait_until(
            lambda: any(e.kind == "gave_up" for e in mon.events()) and len(mon.bugs()) == 1,
            timeout=30,
            message="agent given up and bug filed",
        )
    finally:
        mon.stop()
        kill_spawned(mon)

    crashes = mon.crashes()
    assert len(crashes) == 4  # the first run and three respawns
    for c in crashes:
        assert c.error_type == "ImportError"
        assert "cannot import name 'SkillNames'" in (c.error_message or "")
        assert "Traceback (most recent call last)" in (c.stack_trace or "")
        assert c.root_cause == ROOT_CAUSE
        assert c.agent_type == "architect" and c.task_id == "spec-20"

    events = sorted(mon.events(limit=1000), key=lambda e: e.ts)
    respawns = [e for e in events if e.kind == "respawned"]
    assert len(respawns) == 3
    died = {c.crash_id: c.crashed_at for c in crashes}
    waits = [r.ts - died[r.crash_id] for r in respawns if r.crash_id is not None]
    # Backoff grows: the first respawn is immediate, then base, then base * factor.
    assert waits[0] < 0.5
    assert waits[1] >= 0.5 - 0.01
    assert waits[2] >= 1.0 - 0.01
    assert [e.kind for e in events].count("gave_up") == 1

    (bug,) = mon.bugs(status="all")
    assert bug.priority == "High"
    assert bug.assigned_to == "code_developer"
    assert bug.reporter == "ohm"
    assert "ImportError" in (bug.stack_trace or "")
    assert bug.root_cause == ROOT_CAUSE
    ticket = tmp_path / "tickets" / f"{bug.label}.md"  # beside data/, where the tracker looks
    assert ticket.read_text().startswith(f"# {bug.label}: ")


def write_state(path: Path, active: dict[str, Any], completed: list[Any] | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"active_agents": active, "completed_agents": completed or []}))


def real_entry(
    pid: int, agent_type: str, task: str, argv: list[str], started: float
) -> dict[str, Any]:
    return {
        "pid": pid,
        "agent_type": agent_type,
        "task_id": task,
        "task_type": "create_spec",
        "priority_number": 20,
        "command": shlex.join(argv),
        "started_at": timeutil.iso_local_naive(started),
        "status": "running",
    }


def test_scenario_1_real_format_agent_respawned_and_written_back(
    tmp_path: Path, monitor_factory: Any
) -> None:
    """The orchestrator started the agent; ohm respawns it and writes the new PID back."""
    proj = make_project(tmp_path)
    data = tmp_path / "data"
    logs = data / "logs"
    logs.mkdir(parents=True)
    argv = [sys.executable, "-m", "coffee_maker.autonomous.architect"]
    started = time.time()
    with open(logs / "architect-spec-20-pending.log", "wb") as fh:
        proc = subprocess.Popen(argv, cwd=proj, stdout=fh, stderr=subprocess.STDOUT)
    (logs / "architect-spec-20-pending.log").rename(logs / f"architect-spec-20-{proc.pid}.log")
    proc.wait(timeout=20)
    state = data / "orchestrator" / "agent_state.json"
    entry = real_entry(proc.pid, "architect", "spec-20", argv, started)
    entry["cwd"] = str(proj)
    write_state(state, {str(proc.pid): entry})
    state.chmod(0o644)

    mon: OrchestratorHealthMonitor = monitor_factory(respawn_backoff_base=0.0)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            report = mon.check()
            mon.auto_fix_issues(report)
            mon.report_bugs_if_any(report)
            if any(e.kind == "gave_up" for e in mon.events()):
                break
        else:
            pytest.fail("never gave up")
    finally:
        kill_spawned(mon)
    crashes = mon.crashes()
    assert len(crashes) == 4
    assert all(c.root_cause == ROOT_CAUSE for c in crashes)
    doc = json.loads(state.read_text())
    # Every run is kept: the original and the three respawns ended in completed_agents.
    completed_pids = {int(e["pid"]) for e in doc["completed_agents"]}
    assert proc.pid in completed_pids
    respawned = [e.agent_pid for e in mon.events(limit=1000) if e.kind == "respawned"]
    assert len(respawned) == 3
    for pid in respawned:
        assert pid in completed_pids or str(pid) in doc["active_agents"]
    assert all(isinstance(e["command"], str) for e in doc["completed_agents"])  # still real format
    assert len(mon.bugs()) == 1


def test_scenario_2_frozen_loop_critical_bug_and_verified_restart(
    tmp_path: Path, monitor_factory: Any
) -> None:
    data = tmp_path / "data"
    orch_dir = data / "orchestrator"
    orch_dir.mkdir(parents=True)
    loop_file = orch_dir / "work_loop_state.json"
    loop_file.write_text(json.dumps({"last_update": time.time() - 89 * 60, "active_tasks": {}}))
    fake = tmp_path / "fake_orch.py"
    fake.write_text(
        textwrap.dedent(
            f"""\
            import json, os, sys, time
            if sys.argv[-1] == "frozen":
                time.sleep(600)
            while True:
                tmp = {str(loop_file)!r} + ".tmp"
                with open(tmp, "w") as fh:
                    json.dump({{"last_update": time.time(), "active_tasks": {{}}}}, fh)
                os.replace(tmp, {str(loop_file)!r})
                time.sleep(0.2)
            """
        )
    )
    frozen = subprocess.Popen([sys.executable, str(fake), "orchestrator", "start", "frozen"])
    mon: OrchestratorHealthMonitor = monitor_factory(
        orchestrator_match=["fake_orch.py", "orchestrator", "start"],
        orchestrator_restart_command=[sys.executable, str(fake), "orchestrator", "start", "fresh"],
        restart_grace_period=2.0,
        restart_verify_timeout=20.0,
    )
    try:
        report = mon.check()
        assert report.status == "critical"
        assert report.orchestrator_last_poll is not None
        assert report.orchestrator_last_poll >= 89 * 60 - 5
        assert any(i.type == "orchestrator_freeze" for i in report.issues)
        results = mon.auto_fix_issues(report)
        assert any(r.action == "restart" and r.ok for r in results)
        mon.report_bugs_if_any(report)
        frozen.wait(timeout=10)  # the identified, frozen orchestrator was stopped
        wait_until(
            lambda: any(e.kind == "restarted" for e in (mon.check() and mon.events())),
            timeout=20,
            message="restart verified by a fresh heartbeat",
        )
        assert mon.check().status != "critical"
        bugs = [b for b in mon.bugs() if b.title == "Orchestrator loop frozen"]
        assert len(bugs) == 1 and bugs[0].priority == "Critical"
    finally:
        frozen.kill()
        frozen.wait()
        kill_spawned(mon)


def test_scenario_3_fifteen_dead_entries_cleaned_low_bug_live_untouched(
    tmp_path: Path, monitor_factory: Any
) -> None:
    state = tmp_path / "data" / "orchestrator" / "agent_state.json"
    active: dict[str, Any] = {}
    for i in range(15):
        started = time.time()
        p = subprocess.Popen([sys.executable, "-c", "pass"])
        p.wait()
        active[str(p.pid)] = real_entry(p.pid, "code_developer", f"impl-{i}", ["x"], started)
    live = [
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]) for _ in range(2)
    ]
    try:
        for p in live:
            active[str(p.pid)] = real_entry(
                p.pid, "architect", f"spec-{p.pid}", [sys.executable, "-c", "x"], time.time()
            )
        write_state(state, active, completed=[{"pid": 1, "status": "completed"}])
        mon: OrchestratorHealthMonitor = monitor_factory()
        report = mon.check()
        stale = [i for i in report.issues if i.details.get("kind") == "stale_entries"]
        assert len(stale) == 1 and len(stale[0].details["entries"]) == 15
        assert not [i for i in report.issues if i.type == "agent_crash"]
        mon.auto_fix_issues(report)
        mon.report_bugs_if_any(report)
        doc = json.loads(state.read_text())
        assert set(doc["active_agents"]) == {str(p.pid) for p in live}
        assert doc["active_agents"][str(live[0].pid)] == active[str(live[0].pid)]
        moved = [e for e in doc["completed_agents"] if e.get("completed_at")]
        assert len(moved) == 15
        assert len(doc["completed_agents"]) == 16  # the old one is kept
        assert mon.crashes() == []
        assert not [e for e in mon.events() if e.kind == "respawned"]
        (bug,) = mon.bugs()
        assert bug.priority == "Low"
        for p in live:
            assert p.poll() is None
    finally:
        for p in live:
            p.kill()
            p.wait()


def give_up_on_spec20(tmp_path: Path) -> Path:
    """An orchestrator's architect (real format) that fails at import every time:
    ohm respawns it once, gives up, and its own cleanup moves the dead runs to
    ``completed_agents``. Returns the project directory."""
    proj = make_project(tmp_path)
    argv = [sys.executable, "-m", "coffee_maker.autonomous.architect"]
    logs = tmp_path / "data" / "logs"
    logs.mkdir(parents=True)
    started = time.time()
    with open(logs / "architect-spec-20-pending.log", "wb") as fh:
        proc = subprocess.Popen(argv, cwd=proj, stdout=fh, stderr=subprocess.STDOUT)
    (logs / "architect-spec-20-pending.log").rename(logs / f"architect-spec-20-{proc.pid}.log")
    proc.wait(timeout=20)
    state = tmp_path / "data" / "orchestrator" / "agent_state.json"
    entry = real_entry(proc.pid, "architect", "spec-20", argv, started)
    entry["cwd"] = str(proj)
    write_state(state, {str(proc.pid): entry})
    state.chmod(0o644)
    mon = OrchestratorHealthMonitor(
        base_config(tmp_path, respawn_backoff_base=0.0, max_respawn_attempts=1)
    )
    try:
        deadline = time.monotonic() + 30
        while not any(e.kind == "gave_up" for e in mon.events()):
            assert time.monotonic() < deadline, "never gave up"
            mon.auto_fix_issues(mon.check())
        assert mon.clean_zombies().ok  # ohm's own cleanup: the dead runs leave active_agents
    finally:
        kill_spawned(mon)
        mon.close()
    return proj


def test_given_up_task_stays_an_issue_and_a_row_after_its_entries_are_cleaned(
    tmp_path: Path, monitor_factory: Any
) -> None:
    """A crash ohm could not fix stays visible, to every fresh process, until the task
    runs again: the give-up lives in ohm's respawn ledger, not in the state file."""
    proj = give_up_on_spec20(tmp_path)
    state = tmp_path / "data" / "orchestrator" / "agent_state.json"
    doc = json.loads(state.read_text())
    assert not [e for e in doc["active_agents"].values() if e.get("task_id") == "spec-20"]
    assert [e for e in doc["completed_agents"] if e.get("task_id") == "spec-20"]

    fresh: OrchestratorHealthMonitor = monitor_factory()  # a new process knows nothing
    report = fresh.check()
    assert report.status == "degraded"
    given_up = [i for i in report.issues if i.details.get("given_up")]
    assert len(given_up) == 1
    (issue,) = given_up
    assert issue.type == "agent_crash" and issue.severity == "degraded"
    assert issue.issue_id == "agent_crash:task:spec-20"
    assert issue.task_id == "spec-20" and issue.agent_type == "architect"
    assert [i.issue_id for i in report.issues].count("agent_crash:task:spec-20") == 1
    rows = [a for a in fresh.snapshot(record=False).agents if a.task_id == "spec-20"]
    assert [a.status for a in rows] == ["given_up"]
    assert "ImportError" in (rows[0].reason or "") and rows[0].exit_code == 1
    assert fresh.snapshot(record=False).given_up == 1

    # The same, from real `ohm` processes.
    data = str(tmp_path / "data")
    env = {k: v for k, v in os.environ.items() if k != "OHM_DEBUG"}
    run = [sys.executable, "-m", "ohm_tui"]
    check = subprocess.run(
        [*run, "check", "--data-dir", data, "--json"], capture_output=True, text=True, env=env
    )
    assert check.returncode == 1, check.stdout + check.stderr
    ids = [
        i["issue_id"] for i in json.loads(check.stdout)["issues"] if i["details"].get("given_up")
    ]
    assert ids == ["agent_crash:task:spec-20"]
    agents = subprocess.run(
        [*run, "agents", "--data-dir", data, "--json"], capture_output=True, text=True, env=env
    )
    assert agents.returncode == 0, agents.stderr
    listed = [(a["task_id"], a["status"]) for a in json.loads(agents.stdout)]
    assert ("spec-20", "given_up") in listed

    # The orchestrator runs the task again: it is no longer given up.
    (proj / "coffee_maker" / "autonomous" / "skill_loader.py").write_text("SkillNames = []\n")
    argv = [sys.executable, "-c", "import time; time.sleep(60)"]
    live = subprocess.Popen(argv)
    try:
        entry = real_entry(live.pid, "architect", "spec-20", argv, time.time())
        doc["active_agents"][str(live.pid)] = entry
        state.write_text(json.dumps(doc))
        again: OrchestratorHealthMonitor = monitor_factory()
        wait_until(
            lambda: not any(i.details.get("given_up") for i in again.check().issues),
            timeout=10,
            message="the give-up ended once the task runs again",
        )
        final: OrchestratorHealthMonitor = monitor_factory()  # and it stays ended
        assert not any(i.details.get("given_up") for i in final.check().issues)
    finally:
        live.kill()
        live.wait()
