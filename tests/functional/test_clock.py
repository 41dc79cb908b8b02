"""A wall-clock jump of an hour, either way, while ohm runs (NTP stepping, a VM
resumed, an operator's ``date -s``).

Intervals are monotonic; the wall clock is only shown and stored. A jump must not
freeze a backoff for an hour or end it at once, fire a freeze of the orchestrator's
loop (its last heartbeat, written a moment ago, suddenly reads an hour old), hide a
real freeze for an hour, or reorder the timeline.

The fake clock goes in at the engine's clock seam, ``timeutil.now`` (and each
module's alias of it), in process, under a real background monitor with real
processes. ``time.monotonic`` is left alone: a wall-clock step does not move it.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ohm_tui import OrchestratorHealthMonitor
from ohm_tui.engine import timeutil
from ohm_tui.engine.model import Event
from tests.faults.kit import base_config, q
from tests.helpers import wait_until

JUMP = 3600.0
BACKOFF = 2.0


class FakeClock:
    """Wall time = the real wall time + ``offset``; ``jump`` steps it."""

    def __init__(self) -> None:
        self.offset = 0.0

    def now(self) -> float:
        return time.time() + self.offset

    def jump(self, seconds: float) -> None:
        self.offset += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeClock]:
    """Patch ``timeutil.now`` and every engine module's alias of it."""
    fake = FakeClock()
    real = timeutil.now
    for name, module in list(sys.modules.items()):
        if not name.startswith("ohm_tui.") or module is None:
            continue
        for attr, value in list(vars(module).items()):
            if value is real:
                monkeypatch.setattr(module, attr, fake.now)
    yield fake


class Timeline:
    """Events as they reach a listener, each with the monotonic time it came."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.items: list[tuple[float, Event]] = []

    def __call__(self, ev: Event) -> None:
        with self.lock:
            self.items.append((time.monotonic(), ev))

    def of(self, kind: str) -> list[tuple[float, Event]]:
        with self.lock:
            return [(t, e) for t, e in self.items if e.kind == kind]


@pytest.mark.parametrize("jump", [JUMP, -JUMP], ids=["forward", "back"])
def test_a_pending_respawn_keeps_its_backoff_across_a_clock_jump(
    data_dir: Path, clock: FakeClock, jump: float
) -> None:
    cfg = base_config(
        data_dir,
        respawn_backoff_base=BACKOFF,
        respawn_backoff_factor=1.0,
        max_respawn_attempts=3,
        health_check_interval=3600.0,  # the event path and the backoff timer only
    )
    mon = OrchestratorHealthMonitor(cfg, name="clock")
    timeline = Timeline()
    mon.add_listener(timeline)
    database = data_dir / "orchestrator.db"
    try:
        mon.start()
        # A real agent that crashes soon, every run (watched by then, so each crash is
        # recorded the moment it happens): the first respawn is at once (no backoff
        # before the first attempt), the second waits BACKOFF seconds.
        mon.spawn_agent(
            ["/bin/sh", "-c", "echo working; sleep 0.3; exit 3"], agent_type="worker", task_id="t-1"
        )
        wait_until(lambda: len(timeline.of("crashed")) >= 2, 15, message="second crash")
        wait_until(
            lambda: q(
                database, "SELECT 1 FROM agent_crashes WHERE action_taken LIKE 'respawning in%'"
            ),
            5,
            message="second respawn waiting for its backoff",
        )
        clock.jump(jump)
        wait_until(lambda: len(timeline.of("respawned")) >= 2, 15, message="respawn on time")
        crashed_at = timeline.of("crashed")[1][0]
        respawned_at = timeline.of("respawned")[1][0]
        # Measured from the crash event, which comes a little after the death itself.
        assert respawned_at - crashed_at >= BACKOFF - 0.5, "the backoff ended early"

        # The timeline keeps its order: event ids follow what happened.
        kinds = [e.kind for e in reversed(mon.events(limit=50)) if e.task_id == "t-1"]
        assert kinds[:5] == ["spawned", "crashed", "respawned", "crashed", "respawned"], kinds
        ids = [e.event_id for e in mon.events(limit=50)]
        assert ids == sorted(ids, reverse=True)
    finally:
        mon.close()


def write_heartbeat(data_dir: Path, at: float) -> None:
    """The orchestrator's loop state, as its loop writes it (epoch float, its clock)."""
    path = data_dir / "orchestrator" / "work_loop_state.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"last_update": at, "active_tasks": {}}))


def freezes(mon: OrchestratorHealthMonitor) -> list[str]:
    return [i.error or "" for i in mon.check().issues if i.type == "orchestrator_freeze"]


def test_a_clock_jump_forward_is_no_freeze(data_dir: Path, clock: FakeClock) -> None:
    """The loop wrote its heartbeat a moment ago; then the clock steps an hour ahead
    (for the loop too: its next write will carry the new time)."""
    mon = OrchestratorHealthMonitor(base_config(data_dir), name="clock")
    try:
        mon.start()
        write_heartbeat(data_dir, timeutil.now())
        assert freezes(mon) == []
        clock.jump(JUMP)
        assert freezes(mon) == [], "a clock jump alone read as a frozen loop"
        write_heartbeat(data_dir, timeutil.now())  # its next cycle, on the new time
        assert freezes(mon) == []
    finally:
        mon.close()


def test_a_clock_jump_back_hides_no_real_freeze(data_dir: Path, clock: FakeClock) -> None:
    """The loop stops writing; the clock steps an hour back. The freeze still shows
    once the threshold has passed, not an hour later."""
    cfg = base_config(data_dir, orchestrator_freeze_threshold=1.0)
    mon = OrchestratorHealthMonitor(cfg, name="clock")
    try:
        mon.start()
        write_heartbeat(data_dir, timeutil.now())  # its last write: the loop hangs after it
        assert freezes(mon) == []
        clock.jump(-JUMP)
        wait_until(lambda: freezes(mon), 10, 0.1, message="the freeze is seen")
    finally:
        mon.close()
