"""The publisher: once per check, collect what the endpoint serves.

Requests never reach the engine. A background thread takes the engine's snapshot
at most every ``period`` seconds (however many clients ask) and reads the
database's counters through its own read-only connection; request threads only
read the last published view, an immutable object swapped in one assignment.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

from ohm_tui.engine import timeutil
from ohm_tui.engine.monitor import OrchestratorHealthMonitor
from ohm_tui.engine.sources.invocations import (
    InvocationsError,
    invocations_path,
    read_invocations,
)
from ohm_tui.engine.store import Store, StoreError
from ohm_tui.web.metrics import CheckDurations, Published, Tallies, read_tallies

log = logging.getLogger(__name__)

COST_EVERY = 60.0  # seconds between reads of the whole invocations history


def publish_period(interval: float) -> float:
    """Often enough to show a crash within two seconds, never more often than checks need."""
    return max(0.25, min(interval, 2.0))


class Publisher:
    """Collects a ``Published`` view in the background; ``view`` is always the last one."""

    def __init__(self, monitor: OrchestratorHealthMonitor, *, period: float | None = None) -> None:
        self.monitor = monitor
        self.period = period or publish_period(monitor.config.health_check_interval)
        self._view: Published | None = None
        self._durations = CheckDurations()
        self._last_checked_at: float | None = None
        self._reader: Store | None = None
        self._cost: dict[str, float] = {}
        self._cost_read = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def view(self) -> Published | None:
        return self._view

    def reader(self) -> Store | None:
        """ohm's own read-only connection to the database (None until it exists)."""
        if self._reader is None:
            try:
                self._reader = Store.open_readonly(self.monitor.config.database_path)
            except StoreError as exc:
                log.debug("metrics: database not readable yet: %s", exc)
        return self._reader

    def _costs(self) -> dict[str, float]:
        at = time.monotonic()
        if at - self._cost_read < COST_EVERY and self._cost_read:
            return self._cost
        self._cost_read = at
        path: Path = invocations_path(self.monitor.config.data_dir)
        if not path.is_file():
            self._cost = {}
            return self._cost
        try:
            rows = read_invocations(path, 0.0, by="type")
            self._cost = {str(r.key or ""): r.cost_usd for r in rows}
        except InvocationsError as exc:
            log.warning("metrics: cannot read spend: %s", exc)
        return self._cost

    def refresh(self) -> Published:
        """Collect and publish one view now."""
        snap = self.monitor.snapshot(crash_limit=1, bug_limit=1)
        report = snap.report
        took = self.monitor.last_check_seconds
        if report.checked_at != self._last_checked_at and took is not None:
            self._durations.observe(took)
        self._last_checked_at = report.checked_at
        store = self.reader()
        tallies = read_tallies(store) if store is not None else read_tallies_missing()
        tallies.cost_by_type = self._costs()
        view = Published(
            report=report,
            agents=snap.agents,
            tallies=tallies,
            durations=self._durations.copy(),
            published_at=timeutil.now(),
        )
        self._view = view
        return view

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="ohm-publisher", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.refresh()
            except Exception:  # the endpoint must outlive one bad collection
                log.exception("metrics: collection failed")
            self._stop.wait(self.period)

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        if self._reader is not None:
            self._reader.close()
            self._reader = None


def read_tallies_missing() -> Tallies:
    return Tallies(error="the database does not exist yet")
