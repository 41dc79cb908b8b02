"""Era 2: the orchestrator keeps its agents in ``agent_lifecycle`` and its
heartbeat in ``orchestrator_state`` (``data/orchestrator.db``). The fake
orchestrator is ``ohm_tui.demo.lifecycle_db``, written from the interop facts;
its agents are real processes that really crash, hang and exit."""

from __future__ import annotations

import contextlib
import hashlib
import json
import shlex
import sqlite3
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path
from typing import Any

import psutil
import pytest

from ohm_tui import OrchestratorHealthMonitor
from ohm_tui.cli.main import main
from ohm_tui.demo.lifecycle_db import LifecycleDB
from ohm_tui.engine import timeutil
from tests.functional.test_scenarios import ROOT_CAUSE, make_project
from tests.helpers import ProcessReaper, wait_until

SLEEP = [sys.executable, "-c", "import time; time.sleep(120)"]


def rows(db: LifecycleDB, where: str = "1=1") -> list[dict[str, Any]]:
    conn = sqlite3.connect(db.path)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute(f"SELECT * FROM agent_lifecycle WHERE {where}")]
    finally:
        conn.close()


def spawn(
    db: LifecycleDB, reaper: ProcessReaper, argv: list[str], agent_type: str, task: str, **kw: Any
) -> subprocess.Popen[bytes]:
    """Spawn as the orchestrator does: pipes nobody reads, one row ``spawned``."""
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)
    reaper.add(p)
    db.register(p.pid, agent_type, task, " ".join(argv), task_type="create_spec")
    return p


def dead_row(db: LifecycleDB, agent_type: str, task: str) -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return db.register(p.pid, agent_type, task, "poetry run x")


def test_era2_agents_heartbeat_and_check_names_the_source(
    data_dir: Path, reaper: ProcessReaper, capsys: pytest.CaptureFixture[str]
) -> None:
    db = LifecycleDB(data_dir)
    live = [spawn(db, reaper, SLEEP, "architect", f"spec-{i}") for i in range(2)]
    db.heartbeat(active_tasks={"spec-0": {}})
    (data_dir / "ohm.toml").write_text('orchestrator_match = ["no-such-orch-era2"]\n')
    rc = main(["--data-dir", str(data_dir), "check"])
    out = capsys.readouterr().out
    assert "agent_lifecycle in orchestrator.db (era 2)" in out
    assert "orchestrator_state in orchestrator.db (heartbeat)" in out
    assert "active agents 2" in out
    assert "agent_state.json" not in out  # a newer orchestrator, not an error
    assert "last poll never" not in out
    assert rc == 0, out
    rc = main(["--data-dir", str(data_dir), "check", "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert doc["sources"][0] == "agent_lifecycle in orchestrator.db (era 2)"
    assert doc["metrics"]["orchestrator_last_poll"] < 60  # local time read as local
    for p in live:
        assert p.poll() is None


def test_era2_a_check_never_writes_the_orchestrators_tables(
    data_dir: Path, reaper: ProcessReaper, monitor: Any
) -> None:
    db = LifecycleDB(data_dir)
    spawn(db, reaper, SLEEP, "architect", "spec-1")
    for i in range(3):
        dead_row(db, "code_developer", f"impl-{i}")
    db.heartbeat()

    def digest() -> str:
        data = json.dumps([rows(db), db.execute("SELECT * FROM orchestrator_state")])
        return hashlib.sha256(data.encode()).hexdigest()

    before = digest()
    mon: OrchestratorHealthMonitor = monitor(auto_fix=False)
    report = mon.check()
    assert report.active_agents == 1
    mon.check()
    assert digest() == before


def test_era2_frozen_heartbeat_89_minutes_is_critical(data_dir: Path, monitor: Any) -> None:
    db = LifecycleDB(data_dir)
    db.heartbeat()
    db.set_heartbeat_time(timeutil.iso_local_naive(time.time() - 89 * 60))
    report = monitor().check()
    assert report.status == "critical"
    assert report.orchestrator_last_poll is not None
    assert abs(report.orchestrator_last_poll - 89 * 60) < 30  # not 14 h off
    (freeze,) = [i for i in report.issues if i.type == "orchestrator_freeze"]
    assert freeze.severity == "critical"


def test_era2_scenario_2_frozen_loop_restarted_and_verified(
    tmp_path: Path, data_dir: Path, monitor: Any
) -> None:
    """Design card scenario 2 against orchestrator_state: critical, a verified
    restart (the new loop's updated_at is fresh again), one Critical bug."""
    db = LifecycleDB(data_dir)
    db.heartbeat()
    db.set_heartbeat_time(timeutil.iso_local_naive(time.time() - 89 * 60))
    fake = tmp_path / f"fake_orch_{uuid.uuid4().hex[:8]}.py"  # unique: other runs share the box
    fake.write_text(
        textwrap.dedent(
            f"""\
            import sys, time
            sys.path.insert(0, {str(Path(__file__).resolve().parents[2])!r})
            from ohm_tui.demo.lifecycle_db import LifecycleDB
            if sys.argv[-1] == "frozen":
                time.sleep(600)
            db = LifecycleDB({str(data_dir)!r})
            while True:
                db.heartbeat()
                time.sleep(0.2)
            """
        )
    )
    frozen = subprocess.Popen([sys.executable, str(fake), "orchestrator", "start", "frozen"])
    mon: OrchestratorHealthMonitor = monitor(
        orchestrator_match=[fake.name, "orchestrator", "start"],
        orchestrator_restart_command=[sys.executable, str(fake), "orchestrator", "start", "go"],
        restart_grace_period=2.0,
        restart_verify_timeout=20.0,
    )
    try:
        report = mon.check()
        assert report.status == "critical"
        results = mon.auto_fix_issues(report)
        assert any(r.action == "restart" and r.ok for r in results)
        mon.report_bugs_if_any(report)
        frozen.wait(timeout=10)
        wait_until(
            lambda: any(e.kind == "restarted" for e in (mon.check() and mon.events())),
            timeout=20,
            message="restart verified by a fresh orchestrator_state heartbeat",
        )
        assert mon.check().status != "critical"
        bugs = [b for b in mon.bugs() if b.title == "Orchestrator loop frozen"]
        assert len(bugs) == 1 and bugs[0].priority == "Critical"
    finally:
        frozen.kill()
        frozen.wait()
        # The restarted loop runs this test's own script (a unique name): stop it.
        for proc in psutil.process_iter(["cmdline"]):
            if str(fake) in (proc.info["cmdline"] or []):
                with contextlib.suppress(psutil.Error):
                    proc.kill()


def test_era2_scenario_1_import_error_respawned_written_back_then_one_high_bug(
    tmp_path: Path, data_dir: Path, reaper: ProcessReaper, monitor: Any
) -> None:
    """A later-version orchestrator polls its crashed agent: ``failed``, exit 1,
    the traceback in ``stderr_output``. ohm finds the root cause there, respawns
    3 times, registering each run as the orchestrator would, then files one bug."""
    proj = make_project(tmp_path)
    db = LifecycleDB(data_dir)
    db.heartbeat()
    argv = [sys.executable, "-m", "coffee_maker.autonomous.architect"]
    p = subprocess.Popen(argv, cwd=proj, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    reaper.add(p)
    db.register(p.pid, "architect", "spec-20", shlex.join(argv), worktree_path=str(proj))
    out, err = p.communicate(timeout=30)
    db.close_task(
        "spec-20", "failed", exit_code=p.returncode, stdout=out.decode(), stderr=err.decode()
    )
    mon: OrchestratorHealthMonitor = monitor()
    deadline = time.monotonic() + 60
    while not any(e.kind == "gave_up" for e in mon.events()):
        assert time.monotonic() < deadline, "never gave up"
        report = mon.check()
        mon.auto_fix_issues(report)
        mon.report_bugs_if_any(report)

    def open_rows() -> list[dict[str, Any]]:  # the last run's row is tidied once handled
        mon.auto_fix_issues(mon.check())
        return rows(db, "status IN ('spawned','running')")

    wait_until(lambda: not open_rows(), timeout=20, interval=0.05)

    crashes = mon.crashes()
    assert len(crashes) == 4
    assert all(c.root_cause == ROOT_CAUSE and c.error_type == "ImportError" for c in crashes)
    (first,) = [c for c in crashes if c.agent_pid == p.pid]
    assert "Traceback (most recent call last)" in (first.stack_trace or "")
    all_rows = rows(db)
    assert len(all_rows) == 4
    assert not [r for r in all_rows if r["status"] in ("spawned", "running")]
    by_pid = {r["pid"]: r for r in all_rows}
    assert by_pid[p.pid]["status"] == "failed" and by_pid[p.pid]["exit_code"] == 1
    respawned = [e for e in mon.events(limit=1000) if e.kind == "respawned"]
    assert len(respawned) == 3
    for ev in respawned:
        row = by_pid[ev.agent_pid]
        assert row["status"] == "failed" and row["exit_code"] == 1
        assert row["task_id"] == "spec-20" and row["agent_type"] == "architect"
        assert row["worktree_path"] == str(proj)
        assert shlex.split(row["command"]) == argv
        assert json.loads(row["metadata"])["respawned_by"] == "ohm"
        # Naive local time, as the orchestrator writes: no offset, and the epoch
        # it means (read as local) is the respawn's time, not 14 hours off.
        assert "+" not in row["started_at"] and not row["started_at"].endswith("Z")
        assert abs(timeutil.to_epoch(row["started_at"]) - ev.ts) < 5  # type: ignore[operator]
    (bug,) = mon.bugs()
    assert bug.priority == "High" and bug.root_cause == ROOT_CAUSE


def test_era2_respawn_registers_a_running_row_the_orchestrator_sees(
    data_dir: Path, reaper: ProcessReaper, monitor: Any
) -> None:
    """An older table (no output columns): the early cleanup closed the crash as
    ``completed`` with a NULL exit code, but ohm watched it die. The respawn is
    inserted with only the columns that exist, status ``running``, so the
    ``active_agents`` view lists it; the crashed row becomes ``failed``."""
    db = LifecycleDB(data_dir, with_output=False)
    db.heartbeat()
    crasher = [sys.executable, "-c", "import sys, time; sys.stdin.read(); sys.exit(3)"]
    p = subprocess.Popen(crasher, stdin=subprocess.PIPE)
    reaper.add(p)
    db.register(p.pid, "code_developer", "impl-7", shlex.join(crasher))
    mon: OrchestratorHealthMonitor = monitor(heartbeat_interval=0.05)
    assert mon.check().active_agents == 1
    assert p.stdin is not None
    p.stdin.close()  # the agent dies with exit 3; the orchestrator never reads it
    p.wait(timeout=10)

    def respawned() -> bool:
        mon.auto_fix_issues(mon.check())
        return any(e.kind == "respawned" for e in mon.events())

    wait_until(respawned, timeout=20, interval=0.05)
    active = db.execute("SELECT pid, status, spawned_at FROM active_agents")
    (ev,) = [e for e in mon.events() if e.kind == "respawned"]
    assert [(a[0], a[1]) for a in active] == [(ev.agent_pid, "running")]
    (old,) = rows(db, f"pid={p.pid}")
    assert old["status"] == "failed"


def test_era2_scenario_3_fifteen_dead_rows_closed_low_bug_live_untouched(
    data_dir: Path, reaper: ProcessReaper, monitor: Any
) -> None:
    db = LifecycleDB(data_dir)
    db.heartbeat()
    dead_ids = [dead_row(db, "code_developer", f"impl-{i}") for i in range(15)]
    live = [spawn(db, reaper, SLEEP, "architect", f"spec-{i}") for i in range(2)]
    live_before = rows(db, "status='spawned' AND task_id LIKE 'spec-%'")
    mon: OrchestratorHealthMonitor = monitor()
    report = mon.check()
    stale = [i for i in report.issues if i.details.get("kind") == "stale_entries"]
    assert len(stale) == 1 and len(stale[0].details["entries"]) == 15
    assert not [i for i in report.issues if i.type == "agent_crash"]
    mon.auto_fix_issues(report)
    mon.report_bugs_if_any(report)
    closed = rows(db, f"agent_id IN ({','.join(map(str, dead_ids))})")
    assert {r["status"] for r in closed} == {"completed"}
    assert all(timeutil.to_epoch(r["completed_at"]) for r in closed)
    assert rows(db, "status='spawned' AND task_id LIKE 'spec-%'") == live_before
    assert mon.crashes() == []
    assert not [e for e in mon.events() if e.kind == "respawned"]
    (bug,) = mon.bugs()
    assert bug.priority == "Low"
    for p in live:
        assert p.poll() is None


def test_era2_killed_row_is_not_a_crash(data_dir: Path, monitor: Any) -> None:
    db = LifecycleDB(data_dir)
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    db.register(p.pid, "architect", "spec-9", "poetry run architect")
    db.kill("spec-9")
    mon: OrchestratorHealthMonitor = monitor()
    report = mon.check()
    assert not [i for i in report.issues if i.type in ("agent_crash", "zombie")]
    assert mon.crashes() == []


def test_duplicates_are_counted_across_sources(
    data_dir: Path, reaper: ProcessReaper, monitor: Any
) -> None:
    """One live agent on spec-5 in agent_state.json, another in agent_lifecycle."""
    db = LifecycleDB(data_dir)
    db.heartbeat()
    spawn(db, reaper, SLEEP, "architect", "spec-5")
    other = reaper.spawn_py("import time; time.sleep(120)")
    state = data_dir / "orchestrator" / "agent_state.json"
    state.parent.mkdir()
    entry = {
        "pid": other.pid,
        "agent_type": "architect",
        "task_id": "spec-5",
        "command": shlex.join([sys.executable, "-c", "import time; time.sleep(120)"]),
        "started_at": timeutil.iso_local_naive(time.time()),
        "status": "running",
    }
    state.write_text(json.dumps({"active_agents": {str(other.pid): entry}}))
    report = monitor().check()
    assert report.active_agents == 2
    (dup,) = [i for i in report.issues if i.type == "duplicate_agents"]
    assert dup.task_id == "spec-5"
    assert "agent_state.json in orchestrator/ (era 1)" in report.sources
    assert "agent_lifecycle in orchestrator.db (era 2)" in report.sources


def test_same_run_in_two_sources_is_one_agent(
    data_dir: Path, reaper: ProcessReaper, monitor: Any
) -> None:
    db = LifecycleDB(data_dir)
    p = spawn(db, reaper, SLEEP, "architect", "spec-6")
    state = data_dir / "orchestrator" / "agent_state.json"
    state.parent.mkdir()
    entry = {
        "pid": p.pid,
        "agent_type": "architect",
        "task_id": "spec-6",
        "command": " ".join(SLEEP),
        "started_at": timeutil.iso_local_naive(time.time()),
        "status": "running",
    }
    state.write_text(json.dumps({"active_agents": {str(p.pid): entry}}))
    report = monitor().check()
    assert report.active_agents == 1
    assert not [i for i in report.issues if i.type == "duplicate_agents"]


def test_state_dir_with_no_source_names_what_was_looked_for(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (data_dir / "ohm.toml").write_text('orchestrator_match = ["no-such-orch-none"]\n')
    rc = main(["--data-dir", str(data_dir), "check"])
    captured = capsys.readouterr()
    assert rc == 3  # unknown: not an orchestrator's directory, nothing to judge
    (line,) = captured.err.splitlines()
    assert "no orchestrator state found" in line
    for what in ("agent_state.json", "agent_lifecycle", "claude_invocations.db"):
        assert what in line
    assert sorted(p.name for p in data_dir.iterdir()) == ["ohm.toml"]  # nothing written


def test_pinned_sources_read_only_those(
    data_dir: Path, reaper: ProcessReaper, monitor: Any
) -> None:
    db = LifecycleDB(data_dir)
    spawn(db, reaper, SLEEP, "architect", "spec-1")
    mon: OrchestratorHealthMonitor = monitor(sources=["agent_state"])
    report = mon.check()
    assert report.active_agents == 0
    assert report.sources == ["agent_state.json in orchestrator/ (era 1)"]
    assert any("agent_state.json: file is missing" in i.error for i in report.issues)
    mon2: OrchestratorHealthMonitor = monitor(sources=["agent_lifecycle"])
    assert mon2.check().active_agents == 1


def test_era2_fast_clean_exits_of_one_task_are_flapping(data_dir: Path, monitor: Any) -> None:
    """The orchestrator's own loop restarting an agent that exits 0 after ~10 s,
    seen only through its closed rows."""
    db = LifecycleDB(data_dir)
    db.heartbeat()
    now = time.time()
    for i in range(4):
        at = timeutil.iso_local_naive(now - 60 + i * 11)
        done = timeutil.iso_local_naive(now - 50 + i * 11)
        db.execute(
            "INSERT INTO agent_lifecycle (pid, agent_type, task_id, spawned_at, started_at, "
            "completed_at, status, exit_code, command) VALUES (?,?,?,?,?,?,?,?,?)",
            (30000 + i, "project_manager", "roadmap-sync", at, at, done, "completed", 0, "pm"),
        )
    report = monitor(flap_threshold=3).check()
    (flap,) = [i for i in report.issues if i.type == "flapping"]
    assert flap.task_id == "roadmap-sync"
