"""Respawn, restart and stop by hand, with real agent processes in the real state format.

Issue 9, items 1, 3, 4 and 6: a respawn of a live agent is a restart (never two
copies), an operator's stop is no crash, a respawn runs where the agent ran, and
a respawn that cannot start stays visible (with a bug) until the task runs again.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from ohm_tui.cli.main import main
from ohm_tui.engine.model import EventKind, IssueType
from ohm_tui.engine.monitor import OrchestratorHealthMonitor
from ohm_tui.engine.sources import logparse, logtail
from tests.helpers import ProcessReaper, wait_until
from tests.tui.conftest import Agent, StateDir


@pytest.fixture
def sd(tmp_path: Path, reaper: ProcessReaper) -> Iterator[StateDir]:
    state = StateDir(tmp_path, reaper)
    try:
        yield state
    finally:
        state.cleanup()


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def runs_of(trigger: Path) -> list[int]:
    """Live processes of the test agent waiting on ``trigger`` (one per copy)."""
    found = []
    for p in psutil.process_iter(["pid", "name", "cmdline", "status"]):
        if p.info["status"] == psutil.STATUS_ZOMBIE or p.info["name"] == "ohm-runner":
            continue  # ohm's runner names the agent's argv too: it is no copy of the agent
        cmd = p.info["cmdline"] or []
        if str(trigger) in cmd and len(cmd) > 1 and cmd[1].endswith("agent.py"):
            found.append(p.info["pid"])
    return found


def kinds(monitor: OrchestratorHealthMonitor) -> list[str]:
    return [e.kind for e in monitor.events(limit=1000)]


def completed(sd: StateDir, pid: int) -> dict[str, Any]:
    (entry,) = [e for e in sd.read_state()["completed_agents"] if e["pid"] == pid]
    return dict(entry)


def write_toml(sd: StateDir, **extra: Any) -> None:
    """``data/ohm.toml``: the CLI picks it up with ``--data-dir``."""
    cfg = sd.config(**extra)
    cfg.pop("data_dir")
    lines = [f"{k} = {json.dumps(v)}" for k, v in cfg.items()]
    path = sd.data / "ohm.toml"
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o644)


# ------------------------------------------------------------------ item 1: restart
def test_respawn_of_a_live_agent_stops_it_first_and_leaves_one_copy(sd: StateDir) -> None:
    agent = sd.start_agent("architect", "spec-20")
    monitor = sd.monitor()
    monitor.check()
    plan = monitor.respawn_plan(agent.key)
    assert plan.restart and "is running: it will be stopped first" in plan.text

    result = monitor.respawn(agent.key)

    assert result.ok, result.message
    assert result.new_pid is not None and result.new_pid != agent.pid
    wait_until(lambda: agent.popen.poll() is not None, message="old run stopped")
    assert runs_of(agent.trigger) == [result.new_pid]  # one copy on the task, never two
    for _ in range(3):
        report = monitor.check()
        monitor.auto_fix_issues(report)
    assert runs_of(agent.trigger) == [result.new_pid]
    # Restarted by the operator, never a crash.
    assert monitor.crashes() == []
    assert report.crashed_agents_last_hour == 0
    assert EventKind.RESTARTED_BY_OPERATOR in kinds(monitor)
    old = completed(sd, agent.pid)
    assert (old["status"], old.get("reason")) == ("killed", "restarted by operator")
    assert str(result.new_pid) in sd.read_state()["active_agents"]


def test_restart_stops_the_whole_process_group_of_a_wrapper(sd: StateDir) -> None:
    """``poetry run architect`` is a wrapper: stopping it alone would leave the agent."""
    trigger = sd.triggers / "wrapped"
    inner = [sys.executable, str(sd.script), str(sd.logs), "architect", "spec-9", str(trigger)]
    wrapper = [
        sys.executable,
        "-c",
        "import subprocess, sys; sys.exit(subprocess.call(sys.argv[1:]))",
        *inner,
    ]
    started = time.time()
    popen = subprocess.Popen(wrapper, stdin=subprocess.DEVNULL, start_new_session=True)
    sd.reaper.add(popen)
    threading.Thread(target=popen.wait, daemon=True).start()
    sd.agents.append(Agent(popen, "architect", "spec-9", trigger, started))
    sd._argv[popen.pid] = wrapper
    sd.write_state()
    wait_until(lambda: len(runs_of(trigger)) == 1, message="wrapped agent started")
    (child,) = runs_of(trigger)
    sd.reaper.add(child)
    monitor = sd.monitor()
    monitor.check()

    result = monitor.respawn(popen.pid)

    assert result.ok, result.message
    assert result.new_pid is not None
    sd.reaper.add(result.new_pid)
    wait_until(lambda: not alive(child), message="the wrapped child stopped with its group")
    wait_until(lambda: popen.poll() is not None, message="the wrapper stopped")
    wait_until(lambda: len(runs_of(trigger)) == 1, message="exactly one new copy")
    (new_child,) = runs_of(trigger)
    sd.reaper.add(new_child)  # the new wrapper's agent: not left running after the test


def test_dry_run_shows_the_stop_and_the_start_and_changes_nothing(
    sd: StateDir, capsys: pytest.CaptureFixture[str]
) -> None:
    agent = sd.start_agent("architect", "spec-20")
    write_toml(sd)
    rc = main(["respawn", str(agent.pid), "--dry-run", "--data-dir", str(sd.data)])
    out = capsys.readouterr().out
    assert rc == 0
    assert f"PID {agent.pid} is running: it will be stopped first" in out
    assert f"1. stop PID {agent.pid}: SIGTERM" in out and "SIGKILL after 1s" in out
    assert "2. run: " in out and str(sd.script) in out
    assert agent.popen.poll() is None and runs_of(agent.trigger) == [agent.pid]


# ------------------------------------------------------------------ item 6: stop
def test_operator_stop_from_the_cli_is_an_event_never_a_crash(sd: StateDir) -> None:
    """``ohm stop`` in another process while a monitor with auto-fix watches."""
    agent = sd.start_agent("architect", "spec-20")
    keep = sd.start_agent("code_developer", "impl-7")
    write_toml(sd)
    watcher = sd.monitor(auto_fix=True)
    watcher.start()
    wait_until(lambda: agent.pid in watcher.watching(), timeout=10, message="death watch")

    proc = subprocess.run(
        [sys.executable, "-m", "ohm_tui", "stop", str(agent.pid), "--data-dir", str(sd.data)],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )

    assert proc.returncode == 0, proc.stdout + proc.stderr
    wait_until(lambda: agent.popen.poll() is not None, message="stopped")
    watcher.wake()
    wait_until(
        lambda: str(agent.pid) not in sd.read_state()["active_agents"], message="booked stopped"
    )
    for _ in range(3):
        report = watcher.check()
        watcher.auto_fix_issues(report)
    assert watcher.crashes() == []  # no crash row
    assert report.crashed_agents_last_hour == 0  # nothing for the crash storm
    assert not [i for i in report.issues if i.type == "agent_crash"]
    assert EventKind.STOPPED_BY_OPERATOR in kinds(watcher)
    assert "respawned" not in kinds(watcher)  # and no respawn
    assert runs_of(agent.trigger) == []
    old = completed(sd, agent.pid)
    assert (old["status"], old.get("reason")) == ("killed", "stopped by operator")
    assert keep.popen.poll() is None


def test_a_crash_before_the_stop_is_still_a_crash(sd: StateDir) -> None:
    """Stopping a run that already died (unseen yet) must not explain its crash away."""
    agent = sd.start_agent("architect", "spec-20")
    log = sd.logs / f"architect-spec-20-{agent.pid}.log"
    wait_until(lambda: log.exists() and "starting" in log.read_text(), message="log")
    monitor = sd.monitor()
    monitor.check()
    agent.crash()
    wait_until(lambda: agent.popen.poll() is not None, message="crashed")
    result = monitor.stop_agent(agent.key)
    assert result.ok and "not running" in result.message
    monitor.check()
    (crash,) = monitor.crashes()
    assert crash.error_type == "ImportError"


# ------------------------------------------------------------------ item 3: cwd
def test_respawn_runs_where_the_agent_ran_not_where_ohm_runs(sd: StateDir) -> None:
    """The command names its script relative to the agent's own directory."""
    home = sd.root / "agent-home"
    home.mkdir()
    shutil.copy(sd.script, home / "agent.py")
    trigger = sd.triggers / "rel"
    argv = [sys.executable, "agent.py", str(sd.logs), "architect", "spec-4", str(trigger)]
    started = time.time()
    popen = subprocess.Popen(argv, stdin=subprocess.DEVNULL, cwd=home)
    sd.reaper.add(popen)
    threading.Thread(target=popen.wait, daemon=True).start()
    sd.agents.append(Agent(popen, "architect", "spec-4", trigger, started))
    sd._argv[popen.pid] = argv
    sd.write_state()  # a real-format entry: no cwd in it
    assert Path.cwd() != home  # ohm runs elsewhere (the test's directory)
    monitor = sd.monitor()
    monitor.check()  # seen alive: its directory is remembered
    trigger.touch()
    wait_until(lambda: popen.poll() is not None, message="crashed")
    monitor.check()
    assert f"(in {home})" in monitor.describe_respawn(popen.pid)

    result = monitor.respawn(popen.pid)

    assert result.ok, result.message
    assert result.new_pid is not None
    sd.reaper.add(result.new_pid)
    assert psutil.Process(result.new_pid).cwd() == str(home)
    (crash,) = monitor.crashes()
    assert crash.cwd == str(home)


def test_worktree_path_is_the_respawn_directory(sd: StateDir) -> None:
    worktree = sd.root / "worktrees" / "impl-7"
    worktree.mkdir(parents=True)
    pid = sd.add_dead_entry("code_developer", "impl-7")
    sd.dead[str(pid)]["worktree_path"] = str(worktree)
    sd.write_state()
    monitor = sd.monitor()
    monitor.check()
    assert monitor.describe_respawn(pid).endswith(f"(in {worktree})")


PACKAGE = {
    "coffee_maker/__init__.py": "",
    "coffee_maker/autonomous/__init__.py": "",
    "coffee_maker/autonomous/skill_loader.py": "class SkillName:\n    pass\n",
    "coffee_maker/autonomous/agent_skills.py": (
        "from coffee_maker.autonomous.skill_loader import SkillNames\n"
    ),
    "coffee_maker/autonomous/architect.py": textwrap.dedent(
        """\
        import os, sys, time
        trigger = sys.argv[1]
        print(f"architect {os.getpid()} from {__file__}", flush=True)
        while not os.path.exists(trigger):
            time.sleep(0.01)
        os.unlink(trigger)

        def load():
            import coffee_maker.autonomous.agent_skills

        load()
        """
    ),
}


def install(root: Path) -> Path:
    for rel, body in PACKAGE.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(body)
    return root


def run_module_to_log(where: Path, log: Path, trigger: Path) -> subprocess.Popen[bytes]:
    """``python -m coffee_maker.autonomous.architect`` importing the copy in ``where``."""
    env = {**os.environ, "PYTHONPATH": str(where), "PYTHONDONTWRITEBYTECODE": "1"}
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "coffee_maker.autonomous.architect", str(trigger)],
            cwd=where,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def test_one_fingerprint_wherever_the_code_is_installed(tmp_path: Path) -> None:
    """The same crash from a source tree and from a venv's site-packages is one group."""
    source = install(tmp_path / "orchestrator" / "src")
    venv = install(tmp_path / "venv" / "lib" / "python3.11" / "site-packages")
    worktree = install(tmp_path / "worktrees" / "spec-20")
    infos = []
    for n, where in enumerate((source, venv, worktree)):
        trigger = tmp_path / f"go-{n}"
        trigger.touch()
        log = tmp_path / f"run-{n}.log"
        proc = run_module_to_log(where, log, trigger)
        assert proc.wait(timeout=30) != 0
        text = log.read_text()
        assert str(where) in text  # really that copy
        infos.append(logparse.parse_crash(logtail.tail_text(log)))
    assert {i.error_type for i in infos} == {"ImportError"}
    assert len({i.fingerprint for i in infos}) == 1


def test_the_same_crash_from_two_copies_is_one_bug_counting_every_crash(
    sd: StateDir, tmp_path: Path
) -> None:
    source = install(tmp_path / "orchestrator" / "src")
    venv = install(tmp_path / "venv" / "lib" / "python3.11" / "site-packages")
    monitor = sd.monitor(bug_rate_limit=3600)
    bugs_seen = []
    for n, where in enumerate((source, venv)):
        trigger = sd.triggers / f"copy-{n}"
        started = time.time()
        pending = sd.logs / "pending.log"
        popen = run_module_to_log(where, pending, trigger)
        sd.reaper.add(popen)
        threading.Thread(target=popen.wait, daemon=True).start()
        # Where agent_log_pattern finds it: logs/<type>-<task>-<pid>.log
        pending.rename(sd.logs / f"architect-spec-20-{popen.pid}.log")
        sd.agents.append(Agent(popen, "architect", "spec-20", trigger, started))
        sd._argv[popen.pid] = [
            sys.executable,
            "-m",
            "coffee_maker.autonomous.architect",
            str(trigger),
        ]
        sd.write_state()
        monitor.check()
        trigger.touch()
        wait_until(lambda p=popen: p.poll() is not None, message="crashed")
        wait_until(lambda k=n + 1: monitor.check() and len(monitor.crashes()) == k, message="seen")
        monitor.report_bugs_if_any()
        bugs_seen.append([(b.bug_number, b.occurrences) for b in monitor.bugs("all")])
    fingerprints = {c.fingerprint for c in monitor.crashes()}
    assert len(fingerprints) == 1
    (bug,) = monitor.bugs("all")
    assert bug.occurrences == 2  # both crashes, counted on one bug
    assert bugs_seen[0] == [(bug.bug_number, 1)]


# ------------------------------------------------------------------ item 4: respawn failed
def test_a_respawn_that_cannot_start_stays_visible_with_a_bug(
    sd: StateDir, capsys: pytest.CaptureFixture[str]
) -> None:
    worktree = sd.root / "wt-gone"
    worktree.mkdir()
    shutil.copy(sd.script, worktree / "agent.py")
    trigger = sd.triggers / "gone"
    argv = [sys.executable, "agent.py", str(sd.logs), "code_developer", "impl-3", str(trigger)]
    started = time.time()
    popen = subprocess.Popen(argv, stdin=subprocess.DEVNULL, cwd=worktree)
    sd.reaper.add(popen)
    threading.Thread(target=popen.wait, daemon=True).start()
    sd.agents.append(Agent(popen, "code_developer", "impl-3", trigger, started))
    sd._argv[popen.pid] = argv
    sd.write_state()
    monitor = sd.monitor()
    monitor.check()
    trigger.touch()
    wait_until(lambda: popen.poll() is not None, message="crashed")
    shutil.rmtree(worktree)  # its working directory is gone: the respawn cannot start

    for _ in range(4):  # detect, fail to respawn, move the stale entry, check again
        report = monitor.check()
        monitor.auto_fix_issues(report)
        monitor.report_bugs_if_any(report)
    assert str(popen.pid) not in sd.read_state()["active_agents"]  # moved by the cleanup

    report = monitor.check()
    assert report.status == "degraded"
    (issue,) = [i for i in report.issues if i.type == IssueType.RESPAWN_FAILED]
    assert "working directory does not exist" in issue.error and str(worktree) in issue.error
    snap = monitor.snapshot()
    (view,) = [a for a in snap.agents if a.pid == popen.pid]
    assert view.status == "respawn_failed"
    assert view.reason is not None and str(worktree) in view.reason
    assert snap.given_up == 1
    (bug,) = [b for b in monitor.bugs("all") if b.issue_type == IssueType.RESPAWN_FAILED]
    assert "code_developer" in bug.title and "working directory does not exist" in bug.title
    assert str(worktree) in bug.description and "agent.py" in bug.description
    assert report.respawn_success_rate == 0.0  # a respawn that did not start recovered nothing

    write_toml(sd)
    assert main(["agents", "--data-dir", str(sd.data)]) == 0
    out = capsys.readouterr().out
    assert str(popen.pid) in out and "respawn failed" in out

    # The task runs again: it is no longer an issue.
    sd.agents.remove(sd.agents[-1])  # (the fixture rewrites the file from its own list)
    sd.start_agent("code_developer", "impl-3")
    report = monitor.check()
    assert not [i for i in report.issues if i.type == IssueType.RESPAWN_FAILED], report.issues
    assert report.status == "healthy", [i.error for i in report.issues]


def test_respawn_ok_counts_recoveries_not_starts(sd: StateDir) -> None:
    """A respawn whose new run crashes at once is no success, though it started."""
    agent = sd.start_agent("architect", "spec-20")
    monitor = sd.monitor(respawn_stable_after=300.0, max_respawn_attempts=1)
    monitor.check()
    agent.crash()
    wait_until(lambda: agent.popen.poll() is not None, message="crashed")
    report = monitor.check()
    (done,) = [r for r in monitor.auto_fix_issues(report) if r.action == "respawn"]
    assert done.ok and done.new_pid is not None
    sd.reaper.add(done.new_pid)
    assert monitor.check().respawn_success_rate is None  # too young to tell
    agent.crash()  # the respawned run dies of the same ImportError
    wait_until(lambda: not alive(done.new_pid), message="respawned run crashed")
    wait_until(lambda: monitor.check() and len(monitor.crashes()) == 2, message="second crash")
    for _ in range(2):
        report = monitor.check()
        monitor.auto_fix_issues(report)
    report = monitor.check()
    assert report.respawn_success_rate == 0.0
    assert monitor.snapshot().given_up == 1


def test_a_run_alive_past_the_stability_window_is_a_recovery(sd: StateDir) -> None:
    agent = sd.start_agent("architect", "spec-20")
    monitor = sd.monitor(respawn_stable_after=0.5)
    monitor.check()
    agent.crash()
    wait_until(lambda: agent.popen.poll() is not None, message="crashed")
    (done,) = [r for r in monitor.auto_fix_issues(monitor.check()) if r.action == "respawn"]
    assert done.ok and done.new_pid is not None
    sd.reaper.add(done.new_pid)
    wait_until(lambda: monitor.check().respawn_success_rate == 1.0, message="recovered")
    assert alive(done.new_pid)
