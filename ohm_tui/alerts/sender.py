"""A sender thread with a bounded queue: the producer never waits on the network.

When the queue is full the oldest message is dropped and counted (a newer one
says at least as much: Alertmanager batches carry every open alert, webhook
messages are grouped). Failures after the retries go to ``on_error``.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

from ohm_tui.alerts import http

log = logging.getLogger("ohm.alerts")

T = TypeVar("T")
QUEUE_SIZE = 32


class Sender(Generic[T]):
    """Sends queued items one at a time with ``send_one`` (which raises ``DeliveryError``)."""

    def __init__(
        self,
        name: str,
        send_one: Callable[[T], object],
        on_error: Callable[[str], None],
        *,
        queue_size: int = QUEUE_SIZE,
        attempts: int = http.ATTEMPTS,
        backoff: float = http.BACKOFF,
    ) -> None:
        self.name = name
        self._send_one = send_one
        self._on_error = on_error
        self.attempts = attempts
        self.backoff = backoff
        self._queue: deque[T] = deque()
        self._queue_size = queue_size
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.dropped = 0  # items dropped because the queue was full
        self.sent = 0
        self.failed = 0
        self.attempted = 0  # POSTs tried, retries included
        self._busy = False  # an item is being sent

    def put(self, item: T) -> None:
        with self._cond:
            if len(self._queue) >= self._queue_size:
                self._queue.popleft()
                self.dropped += 1
            self._queue.append(item)
            self._cond.notify_all()

    def pending(self) -> int:
        with self._cond:
            return len(self._queue)

    def drain(self, timeout: float) -> bool:
        """Wait until everything queued was sent or given up (at shutdown)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._queue or self._busy:
                left = deadline - time.monotonic()
                if left <= 0 or self._thread is None:
                    return False
                self._cond.wait(left)
        return True

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name=f"ohm-{self.name}", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _take(self) -> T | None:
        with self._cond:
            while not self._queue and not self._stop.is_set():
                self._cond.wait(1.0)
            if not self._queue:
                return None
            self._busy = True
            return self._queue.popleft()

    def _attempt(self, item: T) -> None:
        self.attempted += 1
        self._send_one(item)

    def _loop(self) -> None:
        while not self._stop.is_set():
            item = self._take()
            if item is None:
                continue
            try:
                self._handle(item)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _handle(self, item: T) -> None:
        """Send one item with its retries; a failure goes to ``on_error``."""
        try:
            result = http.deliver(
                functools.partial(self._attempt, item),
                attempts=self.attempts,
                backoff=self.backoff,
                stop=self._stop,
            )
        except Exception as exc:  # a bug in a formatter must not end the thread
            log.exception("%s: sending failed", self.name)
            result = http.Delivery(False, 1, f"{type(exc).__name__}: {exc}")
        if result.ok:
            self.sent += 1
            return
        self.failed += 1
        try:
            self._on_error(
                f"{self.name}: not delivered after {result.attempts} tries: {result.error}"
            )
        except Exception:
            log.exception("%s: reporting a failed delivery failed", self.name)
