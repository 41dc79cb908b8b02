"""The live demo, with real processes: real-format files, real crashes, the shared
lock protocol, freezes, restarts, and a stop that leaves no process behind."""

from __future__ import annotations

import fcntl
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from ohm_tui.demo.agent import BEHAVIOURS
from ohm_tui.demo.orchestrator import AGENT_TYPES, PACKAGE_PARENT, SESSION_ENV, plan
from ohm_tui.demo.session import DemoSession
from ohm_tui.engine.config import load_config

SPEED = 10.0
IMPORT_ERROR_LINE = (
    "ImportError: cannot import name 'SkillNames' from 'coffee_maker.autonomous.skill_loader'"
)


def wait_until(pred: Callable[[], Any], timeout: float = 10.0, interval: float = 0.05) -> Any:
    """Poll ``pred`` until it returns something truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s: {pred}")
        time.sleep(interval)


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def proc_alive(pid: int) -> bool:
    """Alive and not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return False
    return stat[stat.rfind(b")") + 2 :].split()[0] != b"Z"


def cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [a.decode() for a in raw.split(b"\0") if a]


def demo_marked_processes(session_id: str, state_dir: Path) -> list[int]:
    """Independent scan: live processes carrying the session env var or the dir."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid() or not proc_alive(int(name)):
            continue
        try:
            env = Path(f"/proc/{name}/environ").read_bytes().split(b"\0")
        except OSError:
            env = []
        args = cmdline(int(name))
        if f"{SESSION_ENV}={session_id}".encode() in env or any(str(state_dir) in a for a in args):
            found.append(int(name))
    return found


def active(session: DemoSession) -> dict[str, Any]:
    data = read_json(session.agent_state_path)
    return data["active_agents"] if isinstance(data, dict) else {}


@pytest.fixture
def make_session(tmp_path: Path) -> Iterator[Callable[..., DemoSession]]:
    sessions: list[DemoSession] = []

    def make(**kwargs: Any) -> DemoSession:
        kwargs.setdefault("speed", SPEED)
        kwargs.setdefault("freeze_every", 0)  # no freezes unless a test asks
        if "state_dir" not in kwargs:
            kwargs["state_dir"] = tmp_path / f"state{len(sessions)}"
        session = DemoSession(**kwargs)
        sessions.append(session)
        return session.start()

    yield make
    for session in sessions:
        session.stop()


def locked_edit(path: Path, mutate: Callable[[dict[str, Any]], None], hold: float = 0.0) -> int:
    """ohm's side of the protocol, inline: flock the sidecar, re-read, change,
    temp + fsync + replace. Returns the inode of the file we wrote."""
    with path.with_name(path.name + ".lock").open("a") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        inode_before = path.stat().st_ino
        data = json.loads(path.read_text(encoding="utf-8"))
        mutate(data)
        # Hold the lock across at least one orchestrator cycle so the two
        # writers really contend (not a wait: nothing is polled here).
        time.sleep(hold)
        assert path.stat().st_ino == inode_before, "someone wrote while we held the lock"
        tmp = path.with_name(".test-edit.tmp")
        with tmp.open("w", encoding="utf-8") as fh:
            json.dump(data, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        return path.stat().st_ino


# ---------------------------------------------------------------- pure
def test_plan_is_deterministic_and_covers_every_behaviour() -> None:
    first = plan(7, 300)
    assert first == plan(7, 300)
    assert plan(8, 300) != first
    assert first[0] == ("architect", "spec-20", "crash-import")
    assert {b for _, _, b in first} == set(BEHAVIOURS)
    assert {t for t, _, _ in first} <= set(AGENT_TYPES)
    # spec-20 is the one task that always fails at import; nothing else does.
    assert {b for _, task, b in first if task == "spec-20"} == {"crash-import"}
    assert {task for _, task, b in first if b == "crash-import"} == {"spec-20"}
    assert sum(1 for _, task, _ in first if task == "spec-20") > 1
    # Other tasks are new work, except the one flapping task the loop re-picks.
    others = [task for _, task, _ in first if task not in ("spec-20", "roadmap-sync")]
    assert len(others) == len(set(others))


def test_config_overrides_are_valid_ohm_config(tmp_path: Path) -> None:
    session = DemoSession(tmp_path, speed=SPEED)
    cfg = load_config(session.config_overrides(), search_cwd=False)
    assert cfg.data_dir == str(tmp_path.resolve())
    assert cfg.heartbeat_log_path == tmp_path.resolve() / "orchestrator.log"
    assert cfg.orchestrator_restart_command == session.orchestrator_argv()
    assert "ohm_tui.demo.orchestrator" in cfg.orchestrator_match
    # A freeze must outlast the threshold, or ohm could never see one.
    assert session.freeze_for > cfg.orchestrator_freeze_threshold
    slow = load_config(DemoSession(tmp_path, speed=1).config_overrides(), search_cwd=False)
    assert slow.orchestrator_freeze_threshold == 300
    assert cfg.health_check_interval < slow.health_check_interval


# ---------------------------------------------------------------- agents
def run_agent(tmp_path: Path, behaviour: str, *extra: str) -> subprocess.Popen[bytes]:
    log = (tmp_path / f"{behaviour}.log").open("wb")
    argv = [sys.executable, "-m", "ohm_tui.demo.agent", "--behaviour", behaviour]
    argv += ["--speed", "20", "--duration", "2", "--demo-dir", str(tmp_path), *extra]
    with log:
        return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=PACKAGE_PARENT)


@pytest.mark.parametrize(
    ("behaviour", "code", "last_line"),
    [
        ("crash-runtime", 1, "RuntimeError: LLM response parser got empty choices list"),
        ("crash-timeout", 1, "TimeoutError: Claude API call timed out after 120s"),
        ("complete", 0, None),
        ("exit0-fast", 0, None),
    ],
)
def test_agent_outcomes_are_real(
    tmp_path: Path, behaviour: str, code: int, last_line: str | None
) -> None:
    proc = run_agent(tmp_path, behaviour)
    try:
        assert proc.wait(timeout=10) == code
    finally:
        proc.kill()
    text = (tmp_path / f"{behaviour}.log").read_text()
    assert " - agents.assistant - INFO - Starting assistant agent" in text
    if last_line:
        assert "Traceback (most recent call last):" in text
        assert text.strip().splitlines()[-1] == last_line


@pytest.mark.parametrize("behaviour", ["hang", "prompt"])
def test_blocked_agents_are_silent_idle_and_stop_on_sigterm(tmp_path: Path, behaviour: str) -> None:
    proc = run_agent(tmp_path, behaviour, "--duration", "0.5")
    log = tmp_path / f"{behaviour}.log"
    marker = "Apply these changes? [y/N] " if behaviour == "prompt" else "Waiting for worktree lock"
    try:
        wait_until(lambda: marker in log.read_text())
        # Blocked in the kernel (sleeping), not spinning.
        stat = Path(f"/proc/{proc.pid}/stat").read_bytes()
        assert stat[stat.rfind(b")") + 2 :].split()[0] == b"S"
        assert proc.poll() is None
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=5) == 143
    finally:
        proc.kill()
        proc.wait()
    assert "received SIGTERM, shutting down" in log.read_text()


# ---------------------------------------------------------------- orchestrator
def test_orchestrator_writes_real_format(make_session: Callable[..., DemoSession]) -> None:
    session = make_session(max_agents=3, seed=11)
    assert session.process is not None
    pid = session.process.pid
    # Right after fork the child still shows our command line: wait for the exec.
    args = wait_until(lambda: "start" in (a := cmdline(pid)) and a)
    assert any("orchestrator" in a for a in args) and "start" in args
    wait_until(lambda: len(active(session)) >= 3)
    wait_until(lambda: read_json(session.work_loop_state_path))

    pid_file = session.state_dir / "orchestrator" / "orchestrator.pid"
    assert int(pid_file.read_text()) == session.process.pid
    for key, entry in active(session).items():
        assert key.isdigit() and entry["pid"] == int(key)
        assert isinstance(entry["command"], str)
        argv = shlex.split(entry["command"])
        assert "ohm_tui.demo.agent" in argv
        assert argv[argv.index("--demo-dir") + 1] == str(session.state_dir)
        started = datetime.fromisoformat(entry["started_at"])
        assert started.tzinfo is None
        assert abs(started.timestamp() - time.time()) < 60  # naive *local* time
        assert entry["status"] == "running"
        assert {"agent_type", "task_id", "task_type", "priority_number"} <= set(entry)
        # Output goes to a per-agent log file, never a pipe.
        log = session.state_dir / "logs" / f"{entry['agent_type']}-{entry['task_id']}-{key}.log"
        assert log.is_file()

    loop = read_json(session.work_loop_state_path)
    assert isinstance(loop["last_update"], float)
    assert abs(loop["last_update"] - time.time()) < 30
    assert isinstance(loop["last_roadmap_update"], float)
    assert isinstance(loop["active_tasks"], dict)
    for task in loop["active_tasks"].values():
        assert isinstance(task["started_at"], float) and isinstance(task["task_id"], str)
    heartbeat = session.orchestrator_log.read_text()
    assert " - coffee_maker.orchestrator - INFO - Work loop cycle " in heartbeat
    # It spawns what plan() says, in order, and never more than max_agents at once.
    spawned = re.findall(r" - INFO - Spawned (\w+) for (\S+) ", heartbeat)
    assert len(spawned) >= 3
    assert spawned == [(t, task) for t, task, _ in plan(11, len(spawned))]
    running = [int(n) for n in re.findall(r"Work loop cycle \d+: (\d+) agents running", heartbeat)]
    assert running and max(running) <= 3


def test_import_error_agent_logs_a_real_traceback(
    make_session: Callable[..., DemoSession],
) -> None:
    session = make_session()
    logs = session.state_dir / "logs"

    def crashed_log() -> Path | None:
        for log in logs.glob("architect-spec-20-*.log"):
            if IMPORT_ERROR_LINE in log.read_text():
                return log
        return None

    log = wait_until(crashed_log)
    lines = log.read_text().strip().splitlines()
    assert lines[-1].startswith(IMPORT_ERROR_LINE + " (")
    trace = lines[lines.index("Traceback (most recent call last):") :]
    assert any("coffee_maker/autonomous/agent_skills.py" in ln for ln in trace)
    assert "    from coffee_maker.autonomous.skill_loader import SkillNames" in trace
    # The loop reaped it: stale "running" entry or moved with its exit code.
    pid = log.stem.rsplit("-", 1)[1]

    def recorded() -> bool:
        data = read_json(session.agent_state_path) or {}
        done = [e for e in data.get("completed_agents", []) if str(e.get("pid")) == pid]
        return bool(done and done[0]["exit_code"] == 1) or pid in data.get("active_agents", {})

    wait_until(recorded)


def test_orchestrator_keeps_edits_made_under_the_lock(
    make_session: Callable[..., DemoSession],
) -> None:
    session = make_session()
    wait_until(lambda: len(active(session)) >= 2)
    moved: list[str] = []

    def mutate(data: dict[str, Any]) -> None:
        key = sorted(data["active_agents"])[0]
        entry = data["active_agents"].pop(key)
        data["completed_agents"].append({**entry, "status": "killed", "moved_by": "test"})
        moved.append(key)
        data["active_agents"]["999999"] = {
            "pid": 999999,
            "agent_type": "architect",
            "task_id": "spec-20",
            "command": "true",
            "started_at": datetime.now().isoformat(),
            "status": "running",
            "added_by": "test",
        }

    ours = locked_edit(session.agent_state_path, mutate, hold=3 * 3.0 / SPEED)
    # Two more orchestrator writes after ours.
    second = wait_until(lambda: (ino := session.agent_state_path.stat().st_ino) != ours and ino)
    wait_until(lambda: session.agent_state_path.stat().st_ino != second)
    data = read_json(session.agent_state_path)
    assert data["active_agents"]["999999"]["added_by"] == "test"
    assert moved[0] not in data["active_agents"]
    assert [e["moved_by"] for e in data["completed_agents"] if str(e["pid"]) == moved[0]] == [
        "test"
    ]


def test_freeze_stops_every_write_then_resumes(make_session: Callable[..., DemoSession]) -> None:
    session = make_session(freeze_every=0.5, freeze_for=1.5)
    wait_until(lambda: read_json(session.work_loop_state_path))

    def frozen() -> bool:
        loop = read_json(session.work_loop_state_path)
        return bool(loop) and time.time() - loop["last_update"] > 1.0

    wait_until(frozen, timeout=10)
    assert session.process is not None and session.process.poll() is None
    # The heartbeat log and the agent state went quiet too.
    now = time.time()
    assert now - session.orchestrator_log.stat().st_mtime > 0.8
    assert now - session.agent_state_path.stat().st_mtime > 0.8
    wait_until(lambda: not frozen(), timeout=10)
    assert "Checking GitHub for new pull requests..." in session.orchestrator_log.read_text()


def test_restarted_orchestrator_keeps_existing_entries(
    make_session: Callable[..., DemoSession],
) -> None:
    session = make_session()
    assert session.process is not None
    wait_until(lambda: len(active(session)) >= 3)
    session.process.send_signal(signal.SIGTERM)
    assert session.process.wait(timeout=10) == 0
    before = read_json(session.agent_state_path)
    assert "Orchestrator stopped" in session.orchestrator_log.read_text()
    # It stopped and reaped every agent it spawned before exiting.
    spawned = [int(log.stem.rsplit("-", 1)[1]) for log in session.state_dir.glob("logs/*.log")]
    assert spawned and not any(proc_alive(pid) for pid in spawned)
    killed = [e for e in before["completed_agents"] if e["status"] == "killed"]
    assert killed and all(e["exit_code"] in (143, -15, -9) for e in killed)

    # What ohm's restart does: run the same command again, in its own session.
    with session.orchestrator_log.open("ab") as log:
        again = subprocess.Popen(
            session.orchestrator_argv(),
            stdout=log,
            stderr=subprocess.STDOUT,
            env={k: v for k, v in session.env().items() if k != SESSION_ENV},
            cwd=PACKAGE_PARENT,
            start_new_session=True,
        )
    try:
        before_update = read_json(session.work_loop_state_path)["last_update"]
        wait_until(lambda: read_json(session.work_loop_state_path)["last_update"] > before_update)
        after = read_json(session.agent_state_path)
        for key, entry in before["active_agents"].items():
            assert after["active_agents"][key] == entry
        ids = {(e["pid"], e["started_at"]) for e in after["completed_agents"]}
        assert {(e["pid"], e["started_at"]) for e in before["completed_agents"]} <= ids
    finally:
        session.stop()  # also finds the restarted one, which has no session env
        again.wait(timeout=10)
    assert not proc_alive(again.pid)


def test_stop_leaves_no_demo_process(make_session: Callable[..., DemoSession]) -> None:
    session = make_session(state_dir=None)  # a temp dir the session owns
    assert session.process is not None
    state_dir = session.state_dir
    wait_until(lambda: len(active(session)) >= 3)
    agent_pids = [int(k) for k in active(session)]
    entry = next(iter(active(session).values()))
    argv = shlex.split(entry["command"])
    argv[argv.index("--behaviour") + 1] = "hang"
    # Agents "respawned by ohm": same command, own session, no session env var;
    # one of them behind a wrapper process as ohm's runner does.
    env = {k: v for k, v in session.env().items() if k != SESSION_ENV}
    wrapper_code = "import subprocess, sys; sys.exit(subprocess.call(sys.argv[1:]))"
    extras = [
        subprocess.Popen(
            cmd,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
            cwd=PACKAGE_PARENT,
            start_new_session=True,
        )
        for cmd in (argv, [sys.executable, "-c", wrapper_code, *argv])
    ]
    try:
        wait_until(lambda: all(proc_alive(p.pid) for p in extras))
        marked = demo_marked_processes(session.session_id, state_dir)
        assert session.process.pid in marked and extras[0].pid in marked
        session.stop()
        for p in extras:
            p.wait(timeout=10)
    finally:
        for p in extras:
            p.kill()
            p.wait()
    assert session.process.returncode is not None
    assert not proc_alive(session.process.pid)
    assert not any(proc_alive(pid) for pid in agent_pids)
    assert session.survivors() == []
    assert demo_marked_processes(session.session_id, state_dir) == []
    assert not state_dir.exists()  # the session created it, so it removed it
    session.stop()  # idempotent


def test_frozen_orchestrator_still_stops_cleanly(
    make_session: Callable[..., DemoSession],
) -> None:
    session = make_session(freeze_every=0.3, freeze_for=60)
    assert session.process is not None
    wait_until(
        lambda: "Checking GitHub for new pull requests..." in session.orchestrator_log.read_text()
    )
    began = time.monotonic()
    session.stop()
    assert time.monotonic() - began < 5
    assert session.process.returncode == 0  # it shut down, it was not SIGKILLed
    assert session.survivors() == []
    assert "Orchestrator stopped" in session.orchestrator_log.read_text()
