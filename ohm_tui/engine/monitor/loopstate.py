"""What the check and the background loop share: the wake-up signal, the pid watcher,
the loop's thread, when the last full check ran.

The check raises wake-ups and arms watches; the loop (``loop.EngineLoop``) owns the
thread and consumes the wake-ups. Both hold this one small object, so neither holds
the other (nor the façade).
"""

from __future__ import annotations

import threading

from ohm_tui.engine.system.pidwatch import PidWatcher


class EngineLoopState:
    """The wake-up signal, the pid watcher and the thread of the background loop."""

    def __init__(self) -> None:
        self.signal = threading.Event()  # set: the loop wakes before its next schedule
        self.check_wanted = False  # a wake-up asked for a full check
        self.last_check_at = float("-inf")  # when the last full check ran (epoch)
        self.watcher: PidWatcher | None = None  # background mode with event detection only
        self.thread: threading.Thread | None = None

    def wake(self) -> None:
        """Ask the loop for a full check soon (coalesced by the loop)."""
        self.check_wanted = True
        self.signal.set()

    @property
    def running(self) -> bool:
        return self.thread is not None and self.thread.is_alive()
