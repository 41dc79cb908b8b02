"""Agents started through runner.py: real agents, real logs, real exit records."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from ohm_tui.engine.system import exits, procs
from ohm_tui.engine.system.spawner import Spawner, SpawnResult
from tests.helpers import ProcessReaper, spawn_py, wait_until

WAIT_FOR_GO = (
    "import os, sys, time\n"
    "while not os.path.exists(sys.argv[1]):\n"
    "    time.sleep(0.005)\n"
    "sys.exit(int(sys.argv[2]))\n"
)
SLEEP = "import time; time.sleep(60)"


@pytest.fixture(params=["warm", "cold"])
def prewarm(request: pytest.FixtureRequest, agent_spawner: Spawner) -> Iterator[str]:
    """Run a test with a spare runner waiting (the default) and without one."""
    agent_spawner.set_prewarm(request.param == "warm")
    if request.param == "warm":
        agent_spawner.prewarm()  # so that even the first spawn takes the warm path
    yield str(request.param)


def _spawn(
    sp: Spawner, reaper: ProcessReaper, tmp_path: Path, argv: list[str], **kw: Any
) -> SpawnResult:
    kw.setdefault("cwd", None)
    res = sp.spawn(
        argv, log_file=tmp_path / "logs" / "agent.log", exits_dir=tmp_path / "exits", **kw
    )
    reaper.add(res.pid)
    reaper.add(res.runner_pid)
    return res


def _record(res: SpawnResult) -> dict[str, Any]:
    path = Path(res.exit_file)
    wait_until(path.exists, timeout=10)
    data = exits.read_exit_record(path)
    assert data is not None, path.read_text()
    return data


def _kill(pid: int, create_time: float, sig: int = signal.SIGKILL) -> None:
    """Signal exactly the process we started (a pidfd cannot hit a reused pid)."""
    fd = os.pidfd_open(pid)
    try:
        assert procs.same_start(procs.create_time(pid) or 0.0, create_time)
        signal.pidfd_send_signal(fd, sig)
    finally:
        os.close(fd)


def test_output_goes_to_the_log_and_the_exit_code_is_recorded(
    reaper: ProcessReaper, tmp_path: Path, prewarm: str, agent_spawner: Spawner
) -> None:
    code = "import sys; print('to-stdout'); print('to-stderr', file=sys.stderr); sys.exit(3)"
    argv = [sys.executable, "-c", code]
    res = _spawn(
        agent_spawner, reaper, tmp_path, argv, meta={"agent_type": "architect", "task_id": "t-1"}
    )
    assert res.argv == argv
    assert res.exit_file == str(exits.exit_record_path(tmp_path / "exits", res.pid, res.started_at))
    assert abs(res.started_at - res.create_time) < 2.0
    rec = _record(res)
    assert rec["pid"] == res.pid
    assert rec["exit_code"] == 3
    assert rec["signal"] is None
    assert rec["argv"] == argv
    assert rec["cwd"] == os.getcwd()
    assert rec["meta"] == {"agent_type": "architect", "task_id": "t-1"}
    assert rec["started_at"] == res.started_at
    assert rec["ended_at"] >= rec["started_at"]
    log = Path(res.log_file).read_text()
    assert "to-stdout" in log and "to-stderr" in log
    wait_until(lambda: "exited with code 3" in Path(res.log_file).read_text())
    last = Path(res.log_file).read_text().splitlines()[-1]
    assert last == f"[ohm-runner] agent pid {res.pid} exited with code 3"


def test_killed_agent_records_the_signal(
    reaper: ProcessReaper, tmp_path: Path, prewarm: str, agent_spawner: Spawner
) -> None:
    res = _spawn(agent_spawner, reaper, tmp_path, [sys.executable, "-c", SLEEP])
    _kill(res.pid, res.create_time)
    rec = _record(res)
    assert rec["exit_code"] == -9
    assert rec["signal"] == "SIGKILL"
    wait_until(lambda: "exited with code -9 (SIGKILL)" in Path(res.log_file).read_text())


def test_stopping_the_runner_stops_the_agent(
    reaper: ProcessReaper, tmp_path: Path, agent_spawner: Spawner
) -> None:
    res = _spawn(agent_spawner, reaper, tmp_path, [sys.executable, "-c", SLEEP])
    runner_start = procs.create_time(res.runner_pid)
    assert runner_start is not None
    _kill(res.runner_pid, runner_start, signal.SIGTERM)
    rec = _record(res)
    assert rec["exit_code"] == -signal.SIGTERM
    assert rec["signal"] == "SIGTERM"


def test_output_never_goes_to_a_pipe(
    reaper: ProcessReaper, tmp_path: Path, prewarm: str, agent_spawner: Spawner
) -> None:
    res = _spawn(agent_spawner, reaper, tmp_path, [sys.executable, "-c", SLEEP])
    fd_dir = Path(f"/proc/{res.pid}/fd")
    assert os.readlink(fd_dir / "1") == res.log_file
    assert os.readlink(fd_dir / "2") == res.log_file
    assert os.readlink(fd_dir / "0") == "/dev/null"
    targets = [os.readlink(fd_dir / fd) for fd in os.listdir(fd_dir) if (fd_dir / fd).exists()]
    assert not [t for t in targets if t.startswith("pipe:")], targets
    # Its own session: Ctrl-C in ohm's terminal does not reach it.
    assert os.getsid(res.pid) != os.getsid(0)
    assert os.getsid(res.pid) == res.runner_pid
    runner = procs.read_proc(res.runner_pid)
    assert runner is not None and runner.name == procs.RUNNER_COMM  # readable in ps


def test_a_dead_spare_falls_back_to_a_fresh_runner(
    reaper: ProcessReaper, tmp_path: Path, agent_spawner: Spawner
) -> None:
    agent_spawner.prewarm()
    spare = agent_spawner._spare
    assert spare is not None
    spare.popen.kill()  # our unreaped child
    spare.popen.wait(timeout=10)
    res = _spawn(agent_spawner, reaper, tmp_path, [sys.executable, "-c", "raise SystemExit(4)"])
    assert res.runner_pid != spare.popen.pid
    assert _record(res)["exit_code"] == 4


def test_exit_is_recorded_after_the_spawner_is_gone(reaper: ProcessReaper, tmp_path: Path) -> None:
    go = tmp_path / "go"
    spawner_code = (
        "import json, sys\n"
        "from ohm_tui.engine.system.spawner import Spawner\n"
        "r = Spawner(prewarm=False).spawn([sys.executable, '-c', sys.argv[1], sys.argv[2], '5'],\n"
        "    cwd=None, log_file=sys.argv[3], exits_dir=sys.argv[4])\n"
        "print(json.dumps({'pid': r.pid, 'runner': r.runner_pid, 'exit_file': r.exit_file}))\n"
    )
    parent = spawn_py(
        spawner_code,
        WAIT_FOR_GO,
        str(go),
        str(tmp_path / "agent.log"),
        str(tmp_path / "exits"),
        stdout=subprocess.PIPE,
    )
    reaper.add(parent)
    out, _ = parent.communicate(timeout=30)
    assert parent.returncode == 0
    info = json.loads(out)
    reaper.add(info["pid"])
    reaper.add(info["runner"])
    assert not psutil.pid_exists(parent.pid)
    runner = procs.read_proc(info["runner"])
    assert runner is not None and runner.state != "Z"  # outlived the process that started it
    go.touch()
    exit_file = Path(info["exit_file"])
    wait_until(exit_file.exists, timeout=10)
    rec = exits.read_exit_record(exit_file)
    assert rec is not None and rec["exit_code"] == 5 and rec["pid"] == info["pid"]


def test_missing_executable_raises_and_leaves_no_process(
    reaper: ProcessReaper, tmp_path: Path, prewarm: str, agent_spawner: Spawner
) -> None:
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    with pytest.raises(FileNotFoundError, match="no-such-agent-binary"):
        _spawn(agent_spawner, reaper, tmp_path, ["no-such-agent-binary", "--flag"])
    with pytest.raises(FileNotFoundError, match="no-such-agent-binary"):
        _spawn(agent_spawner, reaper, tmp_path, [str(tmp_path / "no-such-agent-binary")])
    agent_spawner.close()
    after = {p.pid for p in psutil.Process().children(recursive=True)}
    assert after <= before
    failed = sorted((tmp_path / "exits").glob("failed-*.json"))
    assert len(failed) == 2
    rec = exits.read_exit_record(failed[0])
    assert rec is not None and rec["exit_code"] == 127 and rec["pid"] is None
    assert "could not start" in (tmp_path / "logs" / "agent.log").read_text()


def test_unusable_cwd_or_file_is_a_clear_error(
    reaper: ProcessReaper, tmp_path: Path, agent_spawner: Spawner
) -> None:
    with pytest.raises(FileNotFoundError, match="working directory"):
        _spawn(
            agent_spawner,
            reaper,
            tmp_path,
            [sys.executable, "-c", "pass"],
            cwd=str(tmp_path / "nope"),
        )
    not_exec = tmp_path / "data.txt"
    not_exec.write_text("not a program\n")
    with pytest.raises(PermissionError):
        _spawn(agent_spawner, reaper, tmp_path, [str(not_exec)])
    with pytest.raises(ValueError):
        _spawn(agent_spawner, reaper, tmp_path, [])
    with pytest.raises(ValueError):
        _spawn(agent_spawner, reaper, tmp_path, "echo hi")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        _spawn(agent_spawner, reaper, tmp_path, [sys.executable, "-c", "pass"], env={"A=B": "x"})
    with pytest.raises(ValueError):
        _spawn(agent_spawner, reaper, tmp_path, [sys.executable, "-c", "pass"], env={"A": "x\0y"})


def test_env_cwd_and_odd_arguments_reach_the_agent(
    reaper: ProcessReaper, tmp_path: Path, prewarm: str, agent_spawner: Spawner
) -> None:
    workdir = tmp_path / "work dir"
    workdir.mkdir()
    odd = 'quote " backslash \\ newline \n tab \t unicode é ✓ surrogate \udcff'
    code = (
        "import os, sys\n"
        "print('ENV=' + os.environ.get('OHM_TEST_VAR', '<unset>'))\n"
        "print('CWD=' + os.getcwd())\n"
        "print('PARENT_ONLY=' + os.environ.get('OHM_PARENT_ONLY', '<unset>'))\n"
    )
    os.environ["OHM_PARENT_ONLY"] = "leaked"
    try:
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "OHM_TEST_VAR": "from-env"}
        res = _spawn(
            agent_spawner,
            reaper,
            tmp_path,
            [sys.executable, "-c", code, odd],
            cwd=str(workdir),
            env=env,
            meta={"note": odd[:-1]},
        )
    finally:
        del os.environ["OHM_PARENT_ONLY"]
    rec = _record(res)
    assert rec["exit_code"] == 0
    assert rec["argv"][-1] == odd
    assert rec["meta"] == {"note": odd[:-1]}
    assert rec["cwd"] == str(workdir)
    log = Path(res.log_file).read_text()
    assert "ENV=from-env" in log
    assert f"CWD={workdir}" in log
    assert "PARENT_ONLY=<unset>" in log  # env is the whole environment, as for subprocess


def test_log_and_dirs_are_created_private(
    reaper: ProcessReaper, tmp_path: Path, agent_spawner: Spawner
) -> None:
    res = agent_spawner.spawn(
        [sys.executable, "-c", "pass"],
        cwd=None,
        log_file=tmp_path / "deep" / "logs" / "a.log",
        exits_dir=tmp_path / "deep" / "exits",
    )
    reaper.add(res.runner_pid)
    _record(res)
    assert (os.stat(res.log_file).st_mode & 0o777) & 0o007 == 0
    assert (os.stat(tmp_path / "deep" / "logs").st_mode & 0o777) & 0o007 == 0
    assert (os.stat(tmp_path / "deep" / "exits").st_mode & 0o777) & 0o007 == 0


def test_read_exit_record_tolerates_junk(tmp_path: Path) -> None:
    bad = tmp_path / "1-2.json"
    bad.write_bytes(b'{"pid": 1, "exit_co')
    assert exits.read_exit_record(bad) is None
    bad.write_bytes(b"\xff\xfe not json")
    assert exits.read_exit_record(bad) is None
    bad.write_text("[1, 2]")
    assert exits.read_exit_record(bad) is None
    assert exits.read_exit_record(tmp_path / "missing.json") is None


def test_runner_rejects_bad_usage(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-S", "-E", procs.RUNNER_PATH, "--bogus"],
        capture_output=True,
        timeout=30,
    )
    assert proc.returncode == 2
    assert b"unknown option" in proc.stderr
    proc = subprocess.run(
        [sys.executable, "-S", "-E", procs.RUNNER_PATH, "--log", str(tmp_path / "x.log")],
        capture_output=True,
        timeout=30,
    )
    assert proc.returncode == 2
