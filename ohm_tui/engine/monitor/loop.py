"""Background mode: the engine thread, the pid watcher's fast death path, wake-ups.

``EngineLoop`` holds the check engine and the ``EngineLoopState`` it shares with it (the
wake-up signal, the watcher, the thread); never the façade.
"""

from __future__ import annotations

import logging
import threading
import time

from ohm_tui.engine import timeutil
from ohm_tui.engine.config import Config
from ohm_tui.engine.monitor.base import EVENT_CHECK_GAP
from ohm_tui.engine.monitor.checkengine import CheckEngine
from ohm_tui.engine.monitor.loopstate import EngineLoopState
from ohm_tui.engine.system.pidwatch import PidWatcher

log = logging.getLogger("ohm.monitor")


class EngineLoop:
    """Background mode: the engine thread, the pid watcher's fast death path, wake-ups."""

    def __init__(
        self, check: CheckEngine, state: EngineLoopState, lock: threading.RLock, config: Config
    ) -> None:
        self._check = check
        self._state = state
        self._lock = lock
        self.config = config
        self._stop = threading.Event()

    def start(self) -> None:
        """Run checks, fixes and event-driven crash detection in background threads."""
        state = self._state
        with self._lock:
            if state.thread is not None:
                return
            self._stop.clear()
            if self.config.event_detection:
                state.watcher = PidWatcher(after_round=self._check.deaths_settled)
            state.thread = threading.Thread(target=self._loop, name="ohm-engine", daemon=True)
            state.thread.start()
            if self._check.auto_fix:
                # A spare runner waits, so the first respawn skips start-up.
                self._check.spawner.prewarm()

    def stop(self, timeout: float = 10.0) -> None:
        state = self._state
        self._stop.set()
        state.signal.set()
        t = state.thread
        if t is not None:
            t.join(timeout)
        state.thread = None
        if state.watcher is not None:
            state.watcher.close()
            state.watcher = None
        self._check.release_fixer_lease()
        # The warm spare runner holds no agent: it must not outlive the monitor.
        self._check.spawner.close()

    def _event_check_in(self) -> float:
        """Seconds until an event-driven check may run (0: now)."""
        elapsed = timeutil.now() - self._state.last_check_at
        if elapsed < 0:  # the clock went back: do not wait for it to catch up
            return 0.0
        return max(0.0, EVENT_CHECK_GAP - elapsed)

    def _loop(self) -> None:
        """Scheduled checks every ``health_check_interval``; between them, deaths and
        due respawns take their fast paths, and wake-ups coalesce into one check."""
        check, state = self._check, self._state
        last_prune = 0.0
        first = True
        next_scheduled = time.monotonic()
        while not self._stop.is_set():
            state.signal.clear()
            if check.fixer.restart_pending:
                state.check_wanted = True  # a restart is verified by checks
            try:
                if time.monotonic() >= next_scheduled or (
                    state.check_wanted and self._event_check_in() == 0.0
                ):
                    state.check_wanted = False
                    next_scheduled = time.monotonic() + self.config.health_check_interval
                    self._cycle(first)
                    first = False
                    if timeutil.now() - last_prune > 3600 and check.holds_fixer_lease:
                        last_prune = timeutil.now()
                        check.store.prune(
                            older_than=last_prune - self.config.retention_days * 86400
                        )
                else:
                    due = check.fixer.respawn_due_in()
                    if check.auto_fix and due is not None and due <= 0:
                        self._respawn_due()
                check.spawner.reap_children()
            except Exception as exc:  # the engine must outlive any one bad cycle
                log.exception("health cycle failed")
                check.event("engine_error", f"health cycle failed: {exc}"[:500])
            state.signal.wait(self._sleep_for(next_scheduled))

    def _sleep_for(self, next_scheduled: float) -> float:
        """Until the next scheduled check, allowed event-driven check or due respawn."""
        wait = next_scheduled - time.monotonic()
        if self._state.check_wanted:
            wait = min(wait, self._event_check_in())
        due = self._check.fixer.respawn_due_in() if self._check.auto_fix else None
        if due is not None:
            wait = min(wait, max(0.05, due))
        return max(0.0, wait)

    def _cycle(self, first: bool) -> None:
        """One full check, then the fixes and bug reports it calls for."""
        check = self._check
        with self._lock:
            last = check.last_report
            if first and last is not None and timeutil.now() - last.checked_at < 1.0:
                # A face's first snapshot checked a moment ago: a second full
                # check now would only compete with its first paint.
                report = last
            else:
                report = check.check()
        if check.auto_fix:
            check.auto_fix_issues(report)
            check.report_bugs_if_any(report)
        check.arm_watches()

    def _respawn_due(self) -> None:
        """Fast path for respawns whose backoff has ended: no full check needed."""
        check = self._check
        with self._lock:
            if not check.is_fixer():
                return
            check.adopt_respawns(check.fixer.handle_pending())
            check.deliver_events()
