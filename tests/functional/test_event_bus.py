"""Every event reaches a listener exactly once, whichever threads record them.

Before the event bus had its own lock, two threads recording events at once
(the engine's loop and an operator's ``stop_agent``) could both read the events
after the same cursor and hand them to listeners twice: a double toast.
"""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path

from ohm_tui.engine.model import Event
from ohm_tui.engine.monitor import OrchestratorHealthMonitor

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
