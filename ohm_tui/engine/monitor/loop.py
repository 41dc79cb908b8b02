"""Background mode: the engine thread, the pid watcher's fast death path, wake-ups."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable

from ohm_tui.engine import timeutil
from ohm_tui.engine.model import (
    Event,
    HealthReport,
)
from ohm_tui.engine.monitor.base import EVENT_CHECK_GAP, FIXER_LEASE
from ohm_tui.engine.monitor.views import Views
from ohm_tui.engine.store import StoreError
from ohm_tui.engine.system import spawner
from ohm_tui.engine.system.pidwatch import PidWatcher

log = logging.getLogger("ohm.monitor")


class Loop(Views):
    """Background mode: the engine thread, the pid watcher's fast death path, wake-ups."""

    def start(self) -> None:
        """Run checks, fixes and event-driven crash detection in background threads."""
        with self._lock:
            if self._thread is not None:
                return
            self._stop.clear()
            if self.config.event_detection:
                self._watcher = PidWatcher(after_round=self.deaths_settled)
            self._thread = threading.Thread(target=self._loop, name="ohm-engine", daemon=True)
            self._thread.start()
            if self.auto_fix:
                spawner.prewarm()  # a spare runner waits, so the first respawn skips start-up

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        t = self._thread
        if t is not None:
            t.join(timeout)
        self._thread = None
        if self._watcher is not None:
            self._watcher.close()
            self._watcher = None
        if self._store is not None and self._is_fixer:
            with contextlib.suppress(StoreError):
                self._store.release_lease(FIXER_LEASE, self._holder)
            self._is_fixer = False
        # The warm spare runner holds no agent: it must not outlive the monitor.
        spawner.shutdown_spares()

    def _event_check_in(self) -> float:
        """Seconds until an event-driven check may run (0: now)."""
        elapsed = timeutil.now() - self._last_check_at
        if elapsed < 0:  # the clock went back: do not wait for it to catch up
            return 0.0
        return max(0.0, EVENT_CHECK_GAP - elapsed)

    def _loop(self) -> None:
        """Scheduled checks every ``health_check_interval``; between them, deaths and
        due respawns take their fast paths, and wake-ups coalesce into one check."""
        last_prune = 0.0
        first = True
        next_scheduled = time.monotonic()
        while not self._stop.is_set():
            self._wake.clear()
            if self.fixer.restart_pending:
                self._check_wanted = True  # a restart is verified by checks
            try:
                if time.monotonic() >= next_scheduled or (
                    self._check_wanted and self._event_check_in() == 0.0
                ):
                    self._check_wanted = False
                    next_scheduled = time.monotonic() + self.config.health_check_interval
                    self._cycle(first)
                    first = False
                    if timeutil.now() - last_prune > 3600 and self._is_fixer:
                        last_prune = timeutil.now()
                        self.store.prune(older_than=last_prune - self.config.retention_days * 86400)
                else:
                    due = self.fixer.respawn_due_in()
                    if self.auto_fix and due is not None and due <= 0:
                        self._respawn_due()
                spawner.reap_children()
            except Exception as exc:  # the engine must outlive any one bad cycle
                log.exception("health cycle failed")
                self.event("engine_error", f"health cycle failed: {exc}"[:500])
            self._wake.wait(self._sleep_for(next_scheduled))

    def _sleep_for(self, next_scheduled: float) -> float:
        """Until the next scheduled check, allowed event-driven check or due respawn."""
        wait = next_scheduled - time.monotonic()
        if self._check_wanted:
            wait = min(wait, self._event_check_in())
        due = self.fixer.respawn_due_in() if self.auto_fix else None
        if due is not None:
            wait = min(wait, max(0.05, due))
        return max(0.0, wait)

    def _cycle(self, first: bool) -> None:
        """One full check, then the fixes and bug reports it calls for."""
        with self._lock:
            last = self._last_report
            if first and last is not None and timeutil.now() - last.checked_at < 1.0:
                # A face's first snapshot checked a moment ago: a second full
                # check now would only compete with its first paint.
                report = last
            else:
                report = self.check()
        if self.auto_fix:
            self.auto_fix_issues(report)
            self.report_bugs_if_any(report)
        self._arm_watches()

    def _respawn_due(self) -> None:
        """Fast path for respawns whose backoff has ended: no full check needed."""
        with self._lock:
            if not self.is_fixer():
                return
            self._adopt_respawns(self.fixer.handle_pending())
            self._emit_new_events()

    def add_listener(self, callback: Callable[[Event], None]) -> None:
        """Call ``callback(event)`` (from an engine thread) for every new event."""
        self._events.add_listener(callback)

    def remove_listener(self, callback: Callable[[Event], None]) -> None:
        self._events.remove_listener(callback)

    @property
    def last_report(self) -> HealthReport | None:
        """The last check's report, read without the lock (one reference, swapped whole):
        for senders that must never wait on, or slow, the engine."""
        return self._last_report
