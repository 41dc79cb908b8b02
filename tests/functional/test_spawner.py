"""The Spawner a monitor owns: its own warm spare and runners, closed by ``stop()``.

Issue 10: the spare and the children were process-wide globals that ``stop()``
never shut down; two monitors in one process shared (and killed) one spare.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from ohm_tui.engine.monitor import OrchestratorHealthMonitor
from ohm_tui.engine.system import procs
from ohm_tui.engine.system.spawner import Spawner
from tests.faults.kit import base_config
from tests.helpers import ProcessReaper, wait_until

SLEEP = "import time; time.sleep(60)"


def _running(pid: int) -> bool:
    """A live (not zombie) process in /proc."""
    raw = procs.read_proc(pid)
    return raw is not None and raw.state not in "ZXx"


def _gone(pid: int) -> bool:
    """No /proc entry at all: exited AND reaped (a zombie would still be listed)."""
    return procs.read_proc(pid) is None


def _spare_of(mon: OrchestratorHealthMonitor) -> int:
    wait_until(lambda: mon.spawner.spare_pid is not None, timeout=10, message="a spare")
    pid = mon.spawner.spare_pid
    assert pid is not None and _running(pid)

    def named() -> bool:  # the runner names itself once it has started
        raw = procs.read_proc(pid)
        return raw is not None and raw.name == procs.RUNNER_COMM

    wait_until(named, timeout=10, message="the spare runner started")
    return pid


def _prewarm_threads(name: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == f"ohm-prewarm:{name}" and t.is_alive()]


@pytest.fixture
def monitors(tmp_path: Path) -> Iterator[list[OrchestratorHealthMonitor]]:
    made: list[OrchestratorHealthMonitor] = []
    for name in ("spawn-a", "spawn-b"):
        data = tmp_path / name
        data.mkdir()
        made.append(OrchestratorHealthMonitor(base_config(data), name=name))
    try:
        yield made
    finally:
        for m in made:
            m.close()


def test_two_monitors_each_own_their_spare_and_stop_closes_only_its_own(
    monitors: list[OrchestratorHealthMonitor], reaper: ProcessReaper
) -> None:
    a, b = monitors
    assert a.spawner is not b.spawner
    a.start()
    b.start()
    spare_a, spare_b = _spare_of(a), _spare_of(b)
    assert spare_a != spare_b

    agent = a.spawn_agent([sys.executable, "-c", SLEEP], agent_type="worker", task_id="t-1")
    reaper.add(agent.pid)
    proc = procs.read_proc(agent.pid)
    assert proc is not None and proc.ppid == spare_a  # a's own spare took it
    reaper.add(spare_a)
    refill_a = _spare_of(a)  # refilled by a's spawner, off the spawn's path
    assert refill_a != spare_a
    assert b.spawner.spare_pid == spare_b  # b's spare is untouched

    a.stop()
    wait_until(lambda: _gone(refill_a), timeout=10, message="a's spare runner exited and reaped")
    assert a.spawner.spare_pid is None
    assert a.spawner.threads() == [] and _prewarm_threads("spawn-a") == []
    assert _running(spare_b) and b.spawner.spare_pid == spare_b  # another monitor's: kept
    # The agent a started is the orchestrator's to keep: stop() never kills it.
    assert _running(agent.pid) and _running(spare_a)

    # A spawn after stop() is cold and leaves no spare behind.
    late = a.spawn_agent([sys.executable, "-c", SLEEP], agent_type="worker", task_id="t-2")
    reaper.add(late.pid)
    assert a.spawner.spare_pid is None and a.spawner.threads() == []

    b.stop()
    wait_until(lambda: _gone(spare_b), timeout=10, message="b's spare runner exited and reaped")
    assert b.spawner.threads() == [] and _prewarm_threads("spawn-b") == []
    assert _running(agent.pid) and _running(late.pid)


def test_close_right_after_a_spawn_joins_the_refill_and_starts_no_spare(
    reaper: ProcessReaper, tmp_path: Path
) -> None:
    sp = Spawner(name="close-race")
    before = {p.pid for p in psutil.Process().children()}
    res = sp.spawn(
        [sys.executable, "-c", SLEEP],
        cwd=None,
        log_file=tmp_path / "a.log",
        exits_dir=tmp_path / "exits",
    )
    reaper.add(res.pid)
    reaper.add(res.runner_pid)
    sp.close()  # most often while the refill thread still waits to start the next spare
    assert sp.threads() == [] and _prewarm_threads("close-race") == []
    assert sp.spare_pid is None
    after = {p.pid for p in psutil.Process().children()}
    assert after - before == {res.runner_pid}  # the agent's runner only: no spare started
    assert _running(res.pid)
    sp.prewarm()  # a monitor started again reopens its spawner
    spare = sp.spare_pid
    assert spare is not None and _running(spare)
    sp.close()
    wait_until(lambda: _gone(spare), timeout=10, message="the spare exited and reaped")
