"""Event-driven death detection: know that an agent died the moment it dies.

A pidfd (Linux >= 5.3) becomes readable when its process exits, for any
process, child or not. One daemon thread waits on all of them with epoll, so a
thousand watched agents cost nothing while they live and a death is seen within
a millisecond, not at the next health check. Where pidfds cannot be had (old
kernels, EPERM in some sandboxes, other systems) the same thread polls those
pids every 10 ms instead.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import threading
import time
from collections.abc import Callable

from ohm_tui.engine import timeutil
from ohm_tui.engine.system.procs import read_proc, same_start
from ohm_tui.engine.system.signals import pidfd_open

log = logging.getLogger(__name__)

DeathCallback = Callable[[int, float | None], None]

POLL_INTERVAL = 0.01
# Above this many polled pids, read /proc/<pid>/stat (zombie + identity) only
# every Nth round and rely on kill(pid, 0) in between: keeps polling cheap.
_FULL_CHECK_EVERY = 10
_CHEAP_POLL_LIMIT = 64


class _Watch:
    __slots__ = ("callback", "create_time", "fd", "pid")

    def __init__(self, pid: int, create_time: float | None, callback: DeathCallback, fd: int):
        self.pid = pid
        self.create_time = create_time
        self.callback = callback
        self.fd = fd  # -1: polled


def pidfd_supported() -> bool:
    """Can this process watch deaths with pidfds (Linux >= 5.3, not forbidden)?"""
    if not hasattr(os, "pidfd_open") or not hasattr(select, "epoll"):
        return False
    try:
        fd = os.pidfd_open(os.getpid())
    except OSError:
        return False
    os.close(fd)
    return True


class PidWatcher:
    """Calls ``callback(pid, death_wall_time)`` once when a watched process exits.

    Callbacks run in the watcher thread: keep them short (hand work to a queue).
    An exception in a callback is logged and never stops the thread.

    ``after_round`` (if given) runs in the thread after the callbacks of each round
    that saw a death: every death the kernel had ready came in that one round, so a
    callback that only queues its death leaves ``after_round`` a whole storm's deaths
    to handle at once. ``deaths_waiting`` tells it whether more came meanwhile.
    """

    def __init__(
        self,
        *,
        name: str = "ohm-pidwatch",
        poll_interval: float = POLL_INTERVAL,
        use_pidfd: bool | None = None,
        after_round: Callable[[], None] | None = None,
    ) -> None:
        """``use_pidfd=None`` picks pidfds when they work; False forces polling."""
        self._after_round = after_round
        self._lock = threading.Lock()
        self._by_pid: dict[int, _Watch] = {}
        self._by_fd: dict[int, _Watch] = {}
        self._polled: dict[int, _Watch] = {}
        self._to_close: list[int] = []
        self._closed = False
        self._poll_interval = poll_interval
        self._use_pidfd = (
            pidfd_supported() if use_pidfd is None else use_pidfd and pidfd_supported()
        )
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._epoll: select.epoll | None = None
        if self._use_pidfd:
            self._epoll = select.epoll()
            self._epoll.register(self._wake_r, select.EPOLLIN)
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    # ------------------------------------------------------------ public
    @property
    def mechanism(self) -> str:
        """``"pidfd"`` (event-driven) or ``"poll"`` (every 10 ms)."""
        return "pidfd" if self._use_pidfd else "poll"

    def watch(self, pid: int, create_time: float | None, callback: DeathCallback) -> bool:
        """Start watching ``pid``. False if it is already gone (zombie included) or
        is not the process started at ``create_time``: the caller handles that.

        Watching a pid again replaces its callback.
        """
        if self._closed:
            raise RuntimeError("PidWatcher is closed")
        fd = -1
        if self._use_pidfd:
            try:
                opened = pidfd_open(pid)
            except ProcessLookupError:
                return False
            fd = -1 if opened is None else opened  # None: poll this one
        # Checked after the pidfd is open: if the pid was reused before that, the
        # start time shows it; if after, the pidfd still pins the old process.
        raw = read_proc(pid)
        if (
            raw is None
            or raw.state in "ZXx"
            or (create_time is not None and not same_start(raw.start_time, create_time))
        ):
            if fd >= 0:
                os.close(fd)
            return False
        w = _Watch(pid, create_time if create_time is not None else raw.start_time, callback, fd)
        with self._lock:
            if self._closed:
                if fd >= 0:
                    os.close(fd)
                raise RuntimeError("PidWatcher is closed")
            self._retire(self._by_pid.pop(pid, None))
            self._by_pid[pid] = w
            if fd >= 0:
                self._by_fd[fd] = w
                assert self._epoll is not None
                self._epoll.register(fd, select.EPOLLIN)
            else:
                self._polled[pid] = w
        if fd < 0:
            self._wake()  # the thread may be blocked without a timeout
        return True

    def unwatch(self, pid: int) -> None:
        """Stop watching ``pid`` (no callback will come for it)."""
        with self._lock:
            self._retire(self._by_pid.pop(pid, None))
        self._wake()

    def watching(self) -> set[int]:
        with self._lock:
            return set(self._by_pid)

    def deaths_waiting(self, timeout: float = 0.0) -> bool:
        """Has a watched process died that no callback has been called for yet? Waits
        up to ``timeout`` seconds for one (from the watcher's own thread: its
        ``after_round`` waiting for a storm to go quiet).

        A look that takes nothing: the next round reports those deaths as usual.
        Polled pids are not looked at (their next round is at most 10 ms away).
        """
        ep = self._epoll
        deadline = time.monotonic() + timeout
        while ep is not None and not self._closed:
            try:
                ready = ep.poll(max(0.0, deadline - time.monotonic()))
            except (OSError, ValueError):  # closed meanwhile
                return False
            with self._lock:
                if any(fd in self._by_fd for fd, _ in ready):
                    return True
            if not ready or time.monotonic() >= deadline:
                return False
            if self._wake_r in {fd for fd, _ in ready}:
                self._drain_wake()  # a watch or unwatch, not a death: keep waiting
            else:  # fds unwatched meanwhile, closed between two rounds
                return False
        return False

    def close(self, timeout: float = 5.0) -> None:
        """Stop the thread and release every pidfd."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._wake()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout)
        with self._lock:
            fds = [w.fd for w in self._by_pid.values() if w.fd >= 0] + self._to_close
            self._by_pid.clear()
            self._by_fd.clear()
            self._polled.clear()
            self._to_close = []
        for fd in fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        if not self._thread.is_alive():
            if self._epoll is not None:
                self._epoll.close()
            for fd in (self._wake_r, self._wake_w):
                with contextlib.suppress(OSError):
                    os.close(fd)

    def __enter__(self) -> PidWatcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------ internals
    def _retire(self, w: _Watch | None) -> None:
        """Forget ``w`` (lock held). Its fd is closed by the thread between two
        waits, so its number cannot be reused while an event for it is in hand."""
        if w is None:
            return
        if w.fd >= 0:
            self._by_fd.pop(w.fd, None)
            assert self._epoll is not None
            with contextlib.suppress(OSError, ValueError):
                self._epoll.unregister(w.fd)
            self._to_close.append(w.fd)
        else:
            self._polled.pop(w.pid, None)

    def _wake(self) -> None:
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")

    def _drain_wake(self) -> None:
        with contextlib.suppress(OSError):
            while os.read(self._wake_r, 4096):
                pass

    def _run(self) -> None:
        rounds = 0
        while True:
            with self._lock:
                if self._closed:
                    return
                closing, self._to_close = self._to_close, []
                polling = bool(self._polled)
            for fd in closing:
                with contextlib.suppress(OSError):
                    os.close(fd)
            timeout = self._poll_interval if polling else None
            try:
                ready = self._wait(timeout)
            except InterruptedError:  # pragma: no cover - PEP 475 retries for us
                continue
            except Exception:  # never let the thread die
                log.exception("pid watcher wait failed")
                time.sleep(self._poll_interval)
                continue
            now = timeutil.now()  # the death's wall time, from the engine's one clock
            fired: list[_Watch] = []
            with self._lock:
                if self._closed:
                    return
                for fd in ready:
                    if fd == self._wake_r:
                        self._drain_wake()
                        continue
                    w = self._by_fd.get(fd)
                    if w is None:  # unwatched while the event was in flight
                        continue
                    self._finish(w)
                    fired.append(w)
            if polling:
                rounds += 1
                fired.extend(self._poll_round(full=rounds % _FULL_CHECK_EVERY == 0))
            for w in fired:
                try:
                    w.callback(w.pid, now)
                except Exception:
                    log.exception("pid watcher callback for pid %d failed", w.pid)
            if fired and self._after_round is not None:
                try:
                    self._after_round()
                except Exception:
                    log.exception("pid watcher's after-round handler failed")

    def _wait(self, timeout: float | None) -> list[int]:
        if self._epoll is not None:
            return [fd for fd, _ in self._epoll.poll(-1 if timeout is None else timeout)]
        r, _, _ = select.select([self._wake_r], [], [], timeout)
        return list(r)

    def _finish(self, w: _Watch) -> None:
        """Forget a watch that fired (lock held; in the thread, so closing is safe)."""
        if self._by_pid.get(w.pid) is w:
            del self._by_pid[w.pid]
        if w.fd >= 0:
            self._by_fd.pop(w.fd, None)
            assert self._epoll is not None
            with contextlib.suppress(OSError, ValueError):
                self._epoll.unregister(w.fd)
            os.close(w.fd)
            w.fd = -1
        else:
            self._polled.pop(w.pid, None)

    def _poll_round(self, *, full: bool) -> list[_Watch]:
        with self._lock:
            watches = list(self._polled.values())
        full = full or len(watches) <= _CHEAP_POLL_LIMIT
        dead: list[_Watch] = []
        for w in watches:
            if _polled_dead(w, full=full):
                dead.append(w)
        if not dead:
            return []
        fired: list[_Watch] = []
        with self._lock:
            for w in dead:
                if self._polled.get(w.pid) is w:  # not unwatched meanwhile
                    self._finish(w)
                    fired.append(w)
        return fired


def _polled_dead(w: _Watch, *, full: bool) -> bool:
    try:
        os.kill(w.pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # exists, belongs to someone else
    if not full:
        return False
    raw = read_proc(w.pid)
    if raw is None or raw.state in "ZXx":
        return True
    return w.create_time is not None and not same_start(raw.start_time, w.create_time)
