"""Runner processes a ``Spawner`` started, reaped only through its own Popen objects
(``os.waitpid(-1)`` would steal exit codes from other libraries' children)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import threading
import weakref

# Every live registry, so that ``reap_if_child`` never ``waitpid``s a runner some
# Spawner still holds a Popen for (a child is process-wide even when its owner is not).
_registries: weakref.WeakSet[Children] = weakref.WeakSet()
_registries_lock = threading.Lock()


class Children:
    """The runners one Spawner started and has not yet reaped."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._children: dict[int, subprocess.Popen[bytes]] = {}
        with _registries_lock:
            _registries.add(self)

    def register(self, popen: subprocess.Popen[bytes]) -> None:
        with self._lock:
            self._children[popen.pid] = popen

    def forget(self, pid: int) -> None:
        with self._lock:
            self._children.pop(pid, None)

    def get(self, pid: int) -> subprocess.Popen[bytes] | None:
        with self._lock:
            return self._children.get(pid)

    def reap(self) -> list[tuple[int, int]]:
        """Reap runners that have exited: ``(pid, returncode)`` each.

        Only our own Popen objects are polled: ``os.waitpid(-1)`` would steal exit
        codes from other libraries' children.
        """
        with self._lock:
            items = list(self._children.items())
        done: list[tuple[int, int]] = []
        for pid, popen in items:
            rc = popen.poll()
            if rc is not None:
                done.append((pid, rc))
        if done:
            with self._lock:
                for pid, _ in done:
                    self._children.pop(pid, None)
        return done

    def count(self) -> int:
        """How many runners are not yet reaped."""
        with self._lock:
            return len(self._children)


def reap_if_child(pid: int) -> None:
    """Reap ``pid`` if it is our child, so it does not linger as a zombie."""
    with _registries_lock:
        registries = list(_registries)
    for registry in registries:
        popen = registry.get(pid)
        if popen is not None:
            if popen.poll() is not None:
                registry.forget(pid)
            return
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)
