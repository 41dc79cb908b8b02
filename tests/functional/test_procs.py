"""The process table, identity and signals, against real processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psutil
import pytest

from ohm_tui.engine.system import procs, signals
from ohm_tui.engine.system.spawner import Spawner
from tests.helpers import ProcessReaper, wait_until

SLEEP = "import time; time.sleep(60)"


def _ready_file_code(body: str) -> str:
    """Code that runs ``body`` then creates the file named by argv[1], then sleeps."""
    return f"import sys, time, signal, os\n{body}\nopen(sys.argv[1], 'w').close()\ntime.sleep(60)\n"


def _started(child: subprocess.Popen[bytes]) -> None:
    """Wait until the child has exec'd Python (right after fork it is still a copy of us)."""
    wait_until(lambda: (procs.cmdline(child.pid) or [""])[0] == sys.executable)


def test_scan_finds_a_child_with_ppid_state_and_start_time(reaper: ProcessReaper) -> None:
    child = reaper.spawn_py(SLEEP)
    _started(child)
    raw = procs.scan_processes()[child.pid]
    assert raw.ppid == os.getpid()
    assert raw.state in ("S", "R")
    assert raw.status in ("sleeping", "running")
    assert abs(raw.start_time - psutil.Process(child.pid).create_time()) <= 0.05
    assert raw.rss_bytes > 0
    single = procs.read_proc(child.pid)
    assert single is not None and single.start_time == raw.start_time
    assert procs.create_time(child.pid) == raw.start_time
    assert procs.cmdline(child.pid) == [sys.executable, "-c", SLEEP]


def test_comm_with_spaces_and_parentheses_parses(reaper: ProcessReaper, tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    code = _ready_file_code("open('/proc/self/comm', 'w').write('a) b (c')")
    child = reaper.spawn_py(code, str(ready))
    wait_until(ready.exists)
    raw = procs.scan_processes()[child.pid]
    assert raw.name == "a) b (c"
    assert raw.ppid == os.getpid()
    assert abs(raw.start_time - psutil.Process(child.pid).create_time()) <= 0.05


def test_gone_processes_read_as_none(reaper: ProcessReaper) -> None:
    child = reaper.spawn_py("pass")
    child.wait(timeout=10)
    assert procs.read_proc(child.pid) is None
    assert procs.create_time(child.pid) is None
    assert procs.cmdline(child.pid) is None
    assert procs.read_proc(0) is None


def test_psutil_fallback_agrees_with_proc(
    reaper: ProcessReaper, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    ready = tmp_path / "ready"
    child = reaper.spawn_py(_ready_file_code(""), str(ready))
    wait_until(ready.exists)
    wait_until(lambda: (r := procs.read_proc(child.pid)) is not None and r.state == "S")
    fast = procs.read_proc(child.pid)
    monkeypatch.setattr(procs, "HAVE_PROC", False)
    slow = procs.scan_processes()[child.pid]
    assert fast is not None
    assert (slow.ppid, slow.state) == (fast.ppid, fast.state)
    assert abs(slow.start_time - fast.start_time) <= 0.05


def test_identity_matches_by_create_time_start_time_and_command(reaper: ProcessReaper) -> None:
    child = reaper.spawn_py(SLEEP)
    _started(child)
    ct = procs.create_time(child.pid)
    assert ct is not None
    assert procs.identity_matches(child.pid, started_at=None, create_time=ct)
    assert procs.identity_matches(child.pid, started_at=time.time(), tolerance=5.0)
    # PID reuse: the record says the process at this pid started an hour ago.
    assert not procs.identity_matches(child.pid, started_at=time.time() - 3600, tolerance=5.0)
    assert not procs.identity_matches(child.pid, started_at=None, create_time=ct - 3600)
    # create_time wins over a started_at that would match.
    assert not procs.identity_matches(child.pid, started_at=time.time(), create_time=ct - 60)
    # No time known: the command line decides; nothing known never matches.
    assert procs.identity_matches(child.pid, started_at=None, command=[sys.executable, "-c", SLEEP])
    assert not procs.identity_matches(
        child.pid, started_at=None, command=["node", "server.js", "--port=1"]
    )
    assert not procs.identity_matches(child.pid, started_at=None)


def test_terminate_refuses_a_process_that_is_not_the_recorded_one(
    reaper: ProcessReaper,
) -> None:
    child = reaper.spawn_py(SLEEP)
    _started(child)
    outcome = signals.terminate_verified(
        child.pid,
        create_time=None,
        started_at=time.time() - 3600,  # "the agent at this pid started an hour ago"
        tolerance=5.0,
        command=None,
        grace=0.5,
    )
    assert outcome == "identity_mismatch"
    raw = procs.read_proc(child.pid)
    assert raw is not None and raw.state != "Z"
    assert child.poll() is None


def test_terminate_stops_a_cooperative_process_and_reaps_our_child(
    reaper: ProcessReaper,
) -> None:
    child = reaper.spawn_py(SLEEP)
    _started(child)
    ct = procs.create_time(child.pid)
    outcome = signals.terminate_verified(
        child.pid, create_time=ct, started_at=None, tolerance=5.0, command=None, grace=5.0
    )
    assert outcome == "terminated"
    assert procs.read_proc(child.pid) is None  # reaped, not left as a zombie
    again = signals.terminate_verified(
        child.pid, create_time=ct, started_at=None, tolerance=5.0, command=None, grace=1.0
    )
    assert again == "not_running"


def test_terminate_kills_a_process_that_ignores_sigterm(
    reaper: ProcessReaper, tmp_path: Path
) -> None:
    ready = tmp_path / "ready"
    child = reaper.spawn_py(
        _ready_file_code("signal.signal(signal.SIGTERM, signal.SIG_IGN)"), str(ready)
    )
    wait_until(ready.exists)
    started = time.monotonic()
    outcome = signals.terminate_verified(
        child.pid,
        create_time=None,
        started_at=time.time(),
        tolerance=5.0,
        command=None,
        grace=0.3,
    )
    assert outcome == "killed"
    assert time.monotonic() - started >= 0.3  # it did wait the grace period first
    assert procs.read_proc(child.pid) is None


def _zombie_parent(reaper: ProcessReaper, tmp_path: Path) -> tuple[int, int]:
    """A parent that forks a child which exits at once, and never reaps it."""
    out = tmp_path / "zombie-pid"
    code = (
        "import os, sys, time\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    os._exit(0)\n"
        "tmp = sys.argv[1] + '.tmp'\n"
        "open(tmp, 'w').write(str(pid))\n"
        "os.replace(tmp, sys.argv[1])\n"
        "time.sleep(60)\n"
    )
    parent = reaper.spawn_py(code, str(out))
    wait_until(out.exists)
    zombie = int(out.read_text())
    wait_until(lambda: (r := procs.read_proc(zombie)) is not None and r.state == "Z")
    return parent.pid, zombie


def test_find_zombies_reports_an_unreaped_child(reaper: ProcessReaper, tmp_path: Path) -> None:
    parent, zombie = _zombie_parent(reaper, tmp_path)
    table = procs.scan_processes()
    found = procs.find_zombies(table, parents={parent})
    assert [(z.pid, z.ppid, z.state) for z in found] == [(zombie, parent, "Z")]
    assert [z.pid for z in procs.find_zombies(table, pids={zombie})] == [zombie]
    assert zombie in {z.pid for z in procs.find_zombies(table)}
    assert zombie not in {z.pid for z in procs.find_zombies(table, parents={parent + 1_000_000})}
    # A zombie cannot be signalled away: its parent must reap it.
    outcome = signals.terminate_verified(
        zombie, create_time=None, started_at=time.time(), tolerance=30.0, command=None, grace=0.1
    )
    assert outcome == "zombie"


def test_find_orchestrators_matches_all_substrings_only(reaper: ProcessReaper) -> None:
    token = f"ohm-test-{uuid.uuid4().hex}"
    wanted = reaper.spawn_py(SLEEP, token, "orchestrator", "start")
    other = reaper.spawn_py(SLEEP, token, "orchestrator", "stop")
    match = [token, "orchestrator", "start"]
    _started(wanted)
    _started(other)
    table = procs.scan_processes()
    assert procs.find_orchestrators(table, match) == [wanted.pid]
    # Second call is served from the cmdline cache and agrees.
    assert procs.find_orchestrators(procs.scan_processes(), match) == [wanted.pid]
    assert procs.find_orchestrators(table, match, exclude={wanted.pid}) == []
    assert procs.find_orchestrators(table, [token]) == sorted([wanted.pid, other.pid])


def test_cmdline_cache_skips_young_processes_and_prunes(reaper: ProcessReaper) -> None:
    child = reaper.spawn_py(SLEEP)
    _started(child)
    table = procs.scan_processes()
    raw = table[child.pid]
    young = procs.CmdlineCache(min_age=3600)  # everything is "just forked"
    assert young.get(raw) == [sys.executable, "-c", SLEEP]
    assert len(young) == 0
    cache = procs.CmdlineCache(min_age=0)
    assert cache.get(raw) == [sys.executable, "-c", SLEEP]
    assert len(cache) == 1
    cache.prune(table)
    assert len(cache) == 1
    cache.prune({})
    assert len(cache) == 0


def test_find_orchestrators_ignores_our_runner_wrapper(
    reaper: ProcessReaper, tmp_path: Path, agent_spawner: Spawner
) -> None:
    token = f"ohm-test-{uuid.uuid4().hex}"
    res = agent_spawner.spawn(
        [sys.executable, "-c", SLEEP, token, "orchestrator", "start"],
        cwd=None,
        log_file=tmp_path / "orch.log",
        exits_dir=tmp_path / "exits",
    )
    reaper.add(res.pid)
    reaper.add(res.runner_pid)
    wait_until(lambda: procs.cmdline(res.pid) not in (None, []))
    found = procs.find_orchestrators(procs.scan_processes(), [token, "orchestrator", "start"])
    assert found == [res.pid]


def test_cpu_sampler_tells_busy_from_idle(reaper: ProcessReaper, tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    busy = reaper.spawn_py("while True: pass")
    idle = reaper.spawn_py(_ready_file_code(""), str(ready))
    sampler = procs.CpuSampler()
    wait_until(ready.exists)  # past its start-up work: from now on it only sleeps
    _started(busy)

    def sample(pid: int) -> float | None:
        raw = procs.read_proc(pid)
        assert raw is not None
        return sampler.sample(raw, time.monotonic())

    assert sample(busy.pid) is None  # first sight
    assert sample(idle.pid) is None
    readings: dict[int, list[float]] = {busy.pid: [], idle.pid: []}

    def busy_is_busy() -> bool:
        for pid in readings:
            value = sample(pid)
            if value is not None:
                readings[pid].append(value)
        # > 50 % of a core on a quiet machine; the bar is lower because other
        # test runs on a 2-core box can leave a busy loop ~35 % of a core.
        return bool(readings[busy.pid]) and readings[busy.pid][-1] > 30

    wait_until(busy_is_busy, timeout=10, interval=0.1)
    assert readings[idle.pid] and min(readings[idle.pid]) < 5
    alive = {(busy.pid, procs.read_proc(busy.pid).start_time)}  # type: ignore[union-attr]
    sampler.forget_missing(alive)
    assert sample(idle.pid) is None  # forgotten: first sight again


def test_reap_children_returns_exited_runners(
    reaper: ProcessReaper, tmp_path: Path, agent_spawner: Spawner
) -> None:
    res = agent_spawner.spawn(
        [sys.executable, "-c", "pass"],
        cwd=None,
        log_file=tmp_path / "a.log",
        exits_dir=tmp_path / "exits",
    )
    reaper.add(res.runner_pid)
    reaped: list[tuple[int, int]] = []

    def runner_reaped() -> bool:
        reaped.extend(agent_spawner.reap_children())
        return res.runner_pid in dict(reaped)

    wait_until(runner_reaped)
    assert dict(reaped)[res.runner_pid] == 0
    assert procs.read_proc(res.runner_pid) is None  # no zombie left behind


def test_terminate_never_signals_without_identity(reaper: ProcessReaper) -> None:
    child = reaper.spawn_py(SLEEP)
    _started(child)
    outcome = signals.terminate_verified(
        child.pid, create_time=None, started_at=None, tolerance=5.0, command=None, grace=0.1
    )
    assert outcome == "identity_mismatch"
    assert child.poll() is None
    os.kill(child.pid, signal.SIGKILL)  # our own unreaped child: its pid cannot be reused
    child.wait(timeout=10)
