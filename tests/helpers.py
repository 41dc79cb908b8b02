"""Shared test helpers: wait for a condition, start Python children, kill them all.

Tests never sleep a fixed time: they poll a condition with ``wait_until``. Every
process a test starts is registered with a ``ProcessReaper`` (the ``reaper``
fixture) and SIGKILLed at teardown, after checking it is still the same process
(psutil compares the create time before it signals), so a reused PID is never hit.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import psutil


def wait_until(
    predicate: Callable[[], object],
    timeout: float = 5.0,
    interval: float = 0.005,
    message: str | None = None,
) -> None:
    """Poll ``predicate`` until it is truthy; AssertionError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return
        if time.monotonic() >= deadline:
            what = message or getattr(predicate, "__name__", repr(predicate))
            raise AssertionError(f"condition not met within {timeout:g}s: {what}")
        time.sleep(interval)


def spawn_py(code: str, *args: str, **kw: Any) -> subprocess.Popen[bytes]:
    """Run ``sys.executable -c code *args``; output to DEVNULL unless given."""
    kw.setdefault("stdin", subprocess.DEVNULL)
    kw.setdefault("stdout", subprocess.DEVNULL)
    kw.setdefault("stderr", subprocess.DEVNULL)
    return subprocess.Popen([sys.executable, "-c", code, *args], **kw)


class ProcessReaper:
    """Kills (SIGKILL) and waits for every process registered with it.

    Teardown goes in registration order, each process gone before the next is
    killed: register an agent before its runner, so the runner is still there
    to reap the agent (an orphaned zombie would wait for init to reap it).
    """

    def __init__(self) -> None:
        self._targets: list[subprocess.Popen[Any] | psutil.Process] = []

    def add(self, target: int | subprocess.Popen[Any]) -> Any:
        """Register a Popen or a pid (its create time is taken now); returns ``target``."""
        if isinstance(target, subprocess.Popen):
            self._targets.append(target)
        else:
            with contextlib.suppress(psutil.NoSuchProcess):
                self._targets.append(psutil.Process(target))
        return target

    def spawn_py(self, code: str, *args: str, **kw: Any) -> subprocess.Popen[bytes]:
        """``spawn_py`` and register the result."""
        p = spawn_py(code, *args, **kw)
        self._targets.append(p)
        return p

    def cleanup(self, timeout: float = 5.0) -> None:
        targets, self._targets = self._targets, []
        for target in targets:
            if isinstance(target, subprocess.Popen):
                if target.poll() is None:
                    with contextlib.suppress(OSError):
                        target.kill()  # our unreaped child: its pid cannot be reused
                with contextlib.suppress(subprocess.TimeoutExpired):
                    target.wait(timeout=timeout)
            else:
                with contextlib.suppress(psutil.Error):
                    target.kill()  # psutil refuses if the pid now belongs to another process
                _wait_gone(target, timeout)


def _wait_gone(proc: psutil.Process, timeout: float) -> None:
    """Until ``proc`` is gone, reaping it if it is our child; a zombie of another
    parent counts as gone (reaping it is its parent's job)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if proc.ppid() == os.getpid():
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
                return
            if proc.status() == psutil.STATUS_ZOMBIE or not proc.is_running():
                return
        except (psutil.NoSuchProcess, psutil.TimeoutExpired, ChildProcessError):
            return
        time.sleep(0.002)
