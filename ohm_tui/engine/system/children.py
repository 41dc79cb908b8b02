"""Runner processes this process started, reaped only through our own Popen objects
(``os.waitpid(-1)`` would steal exit codes from other libraries' children)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import threading

_registry_lock = threading.Lock()
_children: dict[int, subprocess.Popen[bytes]] = {}


def register_child(popen: subprocess.Popen[bytes]) -> None:
    with _registry_lock:
        _children[popen.pid] = popen


def forget_child(pid: int) -> None:
    with _registry_lock:
        _children.pop(pid, None)


def reap_children() -> list[tuple[int, int]]:
    """Reap runners (and spare runners) this process started: ``(pid, returncode)`` each.

    Only our own Popen objects are polled: ``os.waitpid(-1)`` would steal exit
    codes from other libraries' children.
    """
    with _registry_lock:
        items = list(_children.items())
    done: list[tuple[int, int]] = []
    for pid, popen in items:
        rc = popen.poll()
        if rc is not None:
            done.append((pid, rc))
    if done:
        with _registry_lock:
            for pid, _ in done:
                _children.pop(pid, None)
    return done


def child_count() -> int:
    """How many runner processes we started are not yet reaped."""
    with _registry_lock:
        return len(_children)


def reap_if_child(pid: int) -> None:
    """Reap ``pid`` if it is our child, so it does not linger as a zombie."""
    with _registry_lock:
        popen = _children.get(pid)
    if popen is not None:
        if popen.poll() is not None:
            forget_child(pid)
        return
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)
