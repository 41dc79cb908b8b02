"""Textfile mode: the same metrics, written once, for hosts without a new port."""

from __future__ import annotations

import os

from ohm_tui.engine import timeutil
from ohm_tui.engine.monitor import OrchestratorHealthMonitor
from ohm_tui.engine.store import StoreError
from ohm_tui.web.metrics import CheckDurations, Published, Tallies, read_tallies, write_textfile


def write_prom_file(monitor: OrchestratorHealthMonitor, path: str | os.PathLike[str]) -> None:
    """The metrics of the monitor's last check, written atomically to ``path``."""
    snap = monitor.snapshot(crash_limit=1, bug_limit=1)
    durations = CheckDurations()
    if monitor.last_check_seconds is not None:
        durations.observe(monitor.last_check_seconds)
    try:
        tallies = read_tallies(monitor.store)
    except StoreError as exc:
        tallies = Tallies(error=str(exc))
    view = Published(snap.report, snap.agents, tallies, durations, timeutil.now())
    write_textfile(path, view)
