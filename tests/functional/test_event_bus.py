"""Every event reaches a listener exactly once, whichever threads record them.

Before the event bus had its own lock, two threads recording events at once
(the engine's loop and an operator's ``stop_agent``) could both read the events
after the same cursor and hand them to listeners twice: a double toast.
"""

from __future__ import annotations

import sys
import threading
from collections import Counter
from pathlib import Path

from ohm_tui.engine.model import Event
from ohm_tui.engine.monitor import OrchestratorHealthMonitor
from tests.helpers import wait_until

THREADS = 8
EACH = 40


def test_concurrent_events_are_delivered_once_each(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    mon = OrchestratorHealthMonitor(data_dir=data, name="bus-test")
    got: list[int] = []
    got_lock = threading.Lock()

    def listener(ev: Event) -> None:
        with got_lock:
            got.append(ev.event_id)

    mon.add_listener(listener)
    start = threading.Barrier(THREADS)

    def record(n: int) -> None:
        start.wait()
        for i in range(EACH):
            mon.event("engine_error", f"thread {n} event {i}")

    threads = [threading.Thread(target=record, args=(n,)) for n in range(THREADS)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        twice = {k: v for k, v in Counter(got).items() if v > 1}
        assert twice == {}, f"{len(twice)} events delivered more than once"
        assert len(got) == THREADS * EACH
        assert got == sorted(got)  # in the order they were recorded
    finally:
        mon.close()


def _inside(thread: threading.Thread, function: str) -> bool:
    """Is ``thread`` (blocked) inside ``function`` right now?"""
    frame = sys._current_frames().get(thread.ident or -1)
    while frame is not None:
        if frame.f_code.co_name == function:
            return True
        frame = frame.f_back
    return False


def test_a_listener_added_while_a_check_records_events_does_not_deadlock(tmp_path: Path) -> None:
    """``ohm watch --listen`` adds its listener while the engine thread checks (holding
    the monitor's lock) and records events: the bus must never wait for the monitor's
    lock while holding its own."""
    data = tmp_path / "data"
    data.mkdir()
    mon = OrchestratorHealthMonitor(data_dir=data, name="bus-deadlock")
    adder = threading.Thread(target=mon.add_listener, args=(lambda ev: None,), daemon=True)
    recorded = threading.Event()

    def engine() -> None:  # what a check does: the monitor's lock, then an event
        with mon._lock:
            adder.start()
            wait_until(lambda: _inside(adder, "store"), timeout=10)
            mon.event("engine_error", "recorded while a listener is being added")
        recorded.set()

    checker = threading.Thread(target=engine, daemon=True)
    try:
        checker.start()
        assert recorded.wait(20), "the engine thread deadlocked with add_listener"
        adder.join(10)
        assert not adder.is_alive()
    finally:
        if recorded.is_set():
            mon.close()
