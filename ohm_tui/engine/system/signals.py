"""Verified signals: a signal reaches a process only after its identity is checked,
through a pidfd when the kernel has them (the one ``pidfd_open`` of ohm: the pid
watcher uses it too), so a PID reused meanwhile is never hit.
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
import signal
import time
from typing import Literal

import psutil

from ohm_tui.engine.system.children import reap_if_child
from ohm_tui.engine.system.procs import identity_matches, is_running, read_proc, same_start

TerminateOutcome = Literal[
    "not_running",
    "identity_mismatch",
    "terminated",
    "killed",
    "zombie",
    "permission_denied",
    "still_running",  # SIGKILLed and still there after the wait (D state): not stopped
]


def pidfd_open(pid: int) -> int | None:
    """A pidfd for ``pid``; ``None`` when pidfds are unavailable. Raises ProcessLookupError."""
    opener = getattr(os, "pidfd_open", None)
    if opener is None:
        return None
    try:
        fd: int = opener(pid)
        return fd
    except ProcessLookupError:
        raise
    except OSError as exc:
        if exc.errno in (errno.ENOSYS, errno.EPERM, errno.EINVAL, errno.EACCES):
            return None
        raise


def _wait_pidfd(fd: int, timeout: float) -> bool:
    """Block until the pidfd's process exits (True) or ``timeout`` passes (False)."""
    p = select.poll()
    p.register(fd, select.POLLIN)
    return bool(p.poll(max(0.0, timeout) * 1000.0))


def _reap_if_child(pid: int) -> None:
    reap_if_child(pid)


def _is_gone(pid: int, start: float) -> bool:
    return not is_running(pid, start)


def terminate_verified(
    pid: int,
    *,
    create_time: float | None,
    started_at: float | None,
    tolerance: float,
    command: list[str] | None,
    grace: float,
    group: bool = False,
) -> TerminateOutcome:
    """SIGTERM, wait up to ``grace``, then SIGKILL; only ever to the recorded process.

    Identity is checked before each signal. With a pidfd the signals go to the
    very process that was checked (a reused PID cannot be hit); without one,
    psutil re-checks the create time before each signal. With ``group``, a
    process that leads its own process group gets each signal through its group
    (its children too: a wrapper such as ``poetry run`` must not leave the real
    agent behind); the group id is its PID, which cannot be reused while it lives.
    """
    try:
        pidfd = pidfd_open(pid)
    except ProcessLookupError:
        return "not_running"
    except OSError:
        pidfd = None
    try:
        raw = read_proc(pid)
        if raw is None:
            return "not_running"
        if not identity_matches(
            pid,
            started_at=started_at,
            create_time=create_time,
            tolerance=tolerance,
            command=command,
            raw=raw,
        ):
            return "identity_mismatch"
        if raw.state in "ZXx":
            _reap_if_child(pid)
            return "not_running" if read_proc(pid) is None else "zombie"
        leader = group and _leads_group(pid)
        if pidfd is not None:
            result = _terminate_pidfd(pidfd, pid, raw.start_time, grace, leader)
        else:
            result = _terminate_psutil(pid, raw.start_time, grace, leader)
        if result in ("terminated", "killed"):
            _reap_if_child(pid)
        return result
    finally:
        if pidfd is not None:
            os.close(pidfd)


def _leads_group(pid: int) -> bool:
    """True when ``pid`` is the leader of its own process group."""
    try:
        return os.getpgid(pid) == pid
    except OSError:
        return False


def _group_signal(pid: int, sig: int) -> None:
    """Signal the group ``pid`` leads (called only while the leader is verified alive)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, sig)


def _terminate_pidfd(
    pidfd: int, pid: int, start: float, grace: float, group: bool = False
) -> TerminateOutcome:
    try:
        signal.pidfd_send_signal(pidfd, signal.SIGTERM)
        if group:
            _group_signal(pid, signal.SIGTERM)
    except ProcessLookupError:
        return "terminated"
    except PermissionError:
        return "permission_denied"
    if _wait_pidfd(pidfd, grace):
        return "terminated"
    # The pidfd pins the process: it cannot be another one now. Re-check
    # anyway that it has not become a zombie between the wait and here.
    if _is_gone(pid, start):
        return "terminated"
    try:
        signal.pidfd_send_signal(pidfd, signal.SIGKILL)
        if group:
            _group_signal(pid, signal.SIGKILL)
    except ProcessLookupError:
        return "terminated"
    except PermissionError:
        return "permission_denied"
    _wait_pidfd(pidfd, 2.0)  # SIGKILL cannot be caught: only D state delays it
    return "killed" if _is_gone(pid, start) else "still_running"


def _terminate_psutil(
    pid: int, start: float, grace: float, group: bool = False
) -> TerminateOutcome:
    try:
        proc = psutil.Process(pid)
        if not same_start(proc.create_time(), start):
            return "identity_mismatch"
        proc.terminate()  # psutil re-checks create time before signalling
        if group:
            _group_signal(pid, signal.SIGTERM)
    except psutil.NoSuchProcess:
        return "terminated"
    except psutil.AccessDenied:
        return "permission_denied"
    deadline = time.monotonic() + grace
    interval = 0.002
    while time.monotonic() < deadline:
        if _is_gone(pid, start):
            return "terminated"
        time.sleep(interval)
        interval = min(interval * 2, 0.05)
    if _is_gone(pid, start):
        return "terminated"
    try:
        proc.kill()
        if group and not _is_gone(pid, start):
            _group_signal(pid, signal.SIGKILL)
    except psutil.NoSuchProcess:
        return "terminated"
    except psutil.AccessDenied:
        return "permission_denied"
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline and not _is_gone(pid, start):
        time.sleep(0.005)
    return "killed" if _is_gone(pid, start) else "still_running"
