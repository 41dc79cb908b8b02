"""PidWatcher: real processes die, callbacks come once, promptly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from ohm_tui.engine.system import procs
from ohm_tui.engine.system.pidwatch import PidWatcher, pidfd_supported
from ohm_tui.engine.system.spawner import Spawner
from tests.helpers import ProcessReaper, wait_until

SLEEP = "import time; time.sleep(60)"
HAVE_PIDFD = pidfd_supported()


class Calls:
    """Thread-safe record of callbacks."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.calls: list[tuple[int, float | None]] = []

    def __call__(self, pid: int, when: float | None) -> None:
        with self.lock:
            self.calls.append((pid, when))

    def pids(self) -> list[int]:
        with self.lock:
            return [pid for pid, _ in self.calls]


@pytest.fixture(params=["pidfd", "poll"])
def watcher(request: pytest.FixtureRequest) -> Iterator[PidWatcher]:
    if request.param == "pidfd" and not HAVE_PIDFD:
        pytest.skip("pidfd_open is not available here")
    w = PidWatcher(use_pidfd=request.param == "pidfd")
    assert w.mechanism == request.param
    try:
        yield w
    finally:
        w.close()


def _sleepers(reaper: ProcessReaper, n: int) -> list[subprocess.Popen[bytes]]:
    """``n`` cheap sleeping processes (coreutils sleep, not Python)."""
    out = []
    for _ in range(n):
        p = subprocess.Popen(["sleep", "60"], stdin=subprocess.DEVNULL)
        reaper.add(p)
        out.append(p)
    wait_until(lambda: all((procs.cmdline(p.pid) or [""])[0] == "sleep" for p in out))
    return out


def test_death_of_a_non_child_is_reported(
    watcher: PidWatcher, reaper: ProcessReaper, tmp_path: Path, agent_spawner: Spawner
) -> None:
    res = agent_spawner.spawn(
        [sys.executable, "-c", SLEEP], cwd=None, log_file=tmp_path / "a.log", exits_dir=tmp_path
    )
    reaper.add(res.pid)
    reaper.add(res.runner_pid)
    raw = procs.read_proc(res.pid)
    assert raw is not None and raw.ppid == res.runner_pid  # a grandchild, not our child
    calls = Calls()
    assert watcher.watch(res.pid, res.create_time, calls)
    assert watcher.watching() == {res.pid}
    fd = os.pidfd_open(res.pid)
    try:
        signal.pidfd_send_signal(fd, signal.SIGKILL)
    finally:
        os.close(fd)
    wait_until(lambda: calls.pids() == [res.pid], timeout=2.0)
    _, when = calls.calls[0]
    assert when is not None and when >= res.started_at - 1
    assert watcher.watching() == set()


def test_many_deaths_each_reported_exactly_once(watcher: PidWatcher, reaper: ProcessReaper) -> None:
    kids = _sleepers(reaper, 200)
    calls = Calls()
    for p in kids:
        assert watcher.watch(p.pid, procs.create_time(p.pid), calls)
    assert watcher.watching() == {p.pid for p in kids}
    for p in kids:
        p.kill()  # our unreaped children: their pids cannot be reused
    wait_until(lambda: len(calls.pids()) >= 200, timeout=10)
    # One more death, reported after all those: any duplicate would be in by now.
    (last,) = _sleepers(reaper, 1)
    assert watcher.watch(last.pid, procs.create_time(last.pid), calls)
    last.kill()
    wait_until(lambda: last.pid in calls.pids(), timeout=5)
    counts = Counter(calls.pids())
    assert set(counts) == {p.pid for p in kids} | {last.pid}
    assert set(counts.values()) == {1}
    assert watcher.watching() == set()


@pytest.mark.parametrize("mechanism", ["pidfd", "poll"])
def test_deaths_that_came_together_reach_after_round_together(
    mechanism: str, reaper: ProcessReaper
) -> None:
    """A storm is handed over whole: while the handler of one round is busy, every
    death that comes meanwhile waits for the next round, which carries them all
    (``deaths_waiting`` says so before that round), and each comes once."""
    queued: list[int] = []
    rounds: list[list[int]] = []
    busy, go = threading.Event(), threading.Event()
    waiting: list[bool] = []

    def after_round() -> None:
        batch, queued[:] = list(queued), []
        rounds.append(batch)
        if len(rounds) == 1:
            busy.set()
            go.wait(10)

    if mechanism == "pidfd" and not HAVE_PIDFD:
        pytest.skip("pidfd_open is not available here")
    w = PidWatcher(use_pidfd=mechanism == "pidfd", after_round=after_round)
    assert w.mechanism == mechanism
    try:
        first, *rest = _sleepers(reaper, 21)
        for p in (first, *rest):
            assert w.watch(p.pid, procs.create_time(p.pid), lambda pid, _: queued.append(pid))
        first.kill()
        assert busy.wait(10)
        for p in rest:
            p.kill()
        for p in rest:
            p.wait(timeout=10)
        if w.mechanism == "pidfd":
            waiting.append(w.deaths_waiting())
        go.set()
        wait_until(lambda: sum(len(r) for r in rounds) >= 21, timeout=10)
    finally:
        go.set()
        w.close()
    assert rounds[0] == [first.pid]
    assert sorted(rounds[1]) == sorted(p.pid for p in rest)  # one round for the storm
    assert len(rounds) == 2
    assert waiting == ([True] if mechanism == "pidfd" else [])


def test_wrong_create_time_or_gone_pid_is_refused(
    watcher: PidWatcher, reaper: ProcessReaper
) -> None:
    (p,) = _sleepers(reaper, 1)
    ct = procs.create_time(p.pid)
    assert ct is not None
    calls = Calls()
    assert not watcher.watch(p.pid, ct - 3600, calls)  # the pid now belongs to another run
    assert watcher.watching() == set()
    p.kill()
    p.wait(timeout=10)
    assert not watcher.watch(p.pid, ct, calls)
    assert not watcher.watch(p.pid, None, calls)
    assert calls.pids() == []


def test_zombie_counts_as_gone(watcher: PidWatcher, reaper: ProcessReaper) -> None:
    (p,) = _sleepers(reaper, 1)
    ct = procs.create_time(p.pid)
    p.send_signal(signal.SIGKILL)  # not reaped yet: a zombie
    wait_until(lambda: (r := procs.read_proc(p.pid)) is not None and r.state == "Z")
    assert not watcher.watch(p.pid, ct, Calls())


def test_unwatch_stops_callbacks(watcher: PidWatcher, reaper: ProcessReaper) -> None:
    a, b = _sleepers(reaper, 2)
    calls = Calls()
    assert watcher.watch(a.pid, procs.create_time(a.pid), calls)
    assert watcher.watch(b.pid, procs.create_time(b.pid), calls)
    watcher.unwatch(a.pid)
    assert watcher.watching() == {b.pid}
    a.kill()
    a.wait(timeout=10)
    b.kill()  # b dies after a: once b is reported, a would have been too
    wait_until(lambda: b.pid in calls.pids(), timeout=5)
    assert calls.pids() == [b.pid]


def test_a_failing_callback_does_not_stop_the_watcher(
    watcher: PidWatcher, reaper: ProcessReaper
) -> None:
    a, b = _sleepers(reaper, 2)

    def explode(pid: int, when: float | None) -> None:
        raise RuntimeError("callback bug")

    calls = Calls()
    assert watcher.watch(a.pid, procs.create_time(a.pid), explode)
    assert watcher.watch(b.pid, procs.create_time(b.pid), calls)
    a.kill()
    a.wait(timeout=10)
    b.kill()
    wait_until(lambda: calls.pids() == [b.pid], timeout=5)


def test_callback_may_watch_again(watcher: PidWatcher, reaper: ProcessReaper) -> None:
    """A respawn is started from the death callback: watch() works from the thread."""
    a, b = _sleepers(reaper, 2)
    calls = Calls()

    def respawn(pid: int, when: float | None) -> None:
        calls(pid, when)
        watcher.watch(b.pid, procs.create_time(b.pid), calls)

    assert watcher.watch(a.pid, procs.create_time(a.pid), respawn)
    a.kill()
    wait_until(lambda: b.pid in watcher.watching(), timeout=5)
    b.kill()
    wait_until(lambda: calls.pids() == [a.pid, b.pid], timeout=5)


def test_close_joins_the_thread_and_refuses_new_watches(reaper: ProcessReaper) -> None:
    (p,) = _sleepers(reaper, 1)
    w = PidWatcher()
    assert w.watch(p.pid, procs.create_time(p.pid), Calls())
    thread = w._thread
    assert thread.is_alive()
    w.close()
    assert not thread.is_alive()
    assert w.watching() == set()
    with pytest.raises(RuntimeError):
        w.watch(p.pid, None, Calls())
    w.close()  # twice is fine
