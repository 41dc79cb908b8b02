"""A task's phase (respawning, given up) is shown on its newest run only: older runs of
the same task that crashed and were replaced show as what they are (crashed, with their
exit), never as more rows in the task's phase."""

from __future__ import annotations

import time

from ohm_tui import OrchestratorHealthMonitor
from ohm_tui.engine.model import Lifecycle
from tests.faults.kit import MonitorFactory, Orchestrator, crash_argv


def _rows(mon: OrchestratorHealthMonitor, task: str) -> list[tuple[str, int | None]]:
    snap = mon.snapshot(record=False)
    return [(str(a.status), a.exit_code) for a in snap.agents if a.task_id == task]


def _era1_runs(orch: Orchestrator, n: int) -> None:
    """``n`` runs of spec-20 that each crashed (exit 1), all still listed as running, as
    the era-1 orchestrator left them (it never updated an entry of a dead run)."""
    for _ in range(n):
        agent = orch.start("architect", "spec-20", argv=crash_argv())
        assert agent.crash() == 1


def _drive(
    ohm_mon: OrchestratorHealthMonitor, orch: Orchestrator, until: Lifecycle, timeout: float = 30.0
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ohm_mon.auto_fix_issues(ohm_mon.check())
        orch.write()  # era 1 rewrites its file from memory: moved entries come back
        if any(s == until for s, _ in _rows(ohm_mon, "spec-20")):
            return
    raise AssertionError(f"spec-20 never reached {until}: {_rows(ohm_mon, 'spec-20')}")


def test_respawning_shown_once_per_task(ohm: MonitorFactory, orch: Orchestrator) -> None:
    _era1_runs(orch, 3)
    mon = ohm(respawn_backoff_base=60.0, max_respawn_attempts=3)
    _drive(mon, orch, Lifecycle.RESPAWNING)
    rows = _rows(mon, "spec-20")
    assert [s for s, _ in rows].count(Lifecycle.RESPAWNING) == 1, rows
    others = [r for r in rows if r[0] != Lifecycle.RESPAWNING]
    assert others and all(s in (Lifecycle.CRASHED, Lifecycle.STALE) for s, _ in others), rows


def test_given_up_shown_once_per_task(ohm: MonitorFactory, orch: Orchestrator) -> None:
    _era1_runs(orch, 3)
    mon = ohm(respawn_backoff_base=0.0, max_respawn_attempts=1)
    _drive(mon, orch, Lifecycle.GIVEN_UP)
    mon.check()  # the header's count comes from the next check's issues
    rows = _rows(mon, "spec-20")
    assert [s for s, _ in rows].count(Lifecycle.GIVEN_UP) == 1, rows
    others = [r for r in rows if r[0] != Lifecycle.GIVEN_UP]
    assert others and all(s in (Lifecycle.CRASHED, Lifecycle.STALE) for s, _ in others), rows
    assert mon.snapshot(record=False).given_up == 1
