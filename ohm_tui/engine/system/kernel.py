"""What the kernel still says about a process beyond its state letter.

Two facts the real orchestrator never wrote down, read from ``/proc`` (Linux):

- A zombie still carries its exit status (the last field of ``/proc/<pid>/stat``,
  in ``waitpid`` form, since Linux 3.5). The era-1 orchestrator recorded no exit
  code at all, so this is the only exit code of its agents there is, and it is
  gone once the parent reaps the zombie: read it the moment the death is seen.
- ``/proc/<pid>/wchan`` names the kernel function a sleeping process waits in:
  ``pipe_write`` (``anon_pipe_write`` on newer kernels) is a write to a full pipe.
"""

from __future__ import annotations

import os

from ohm_tui.engine.system.procs import read_proc, same_start

PIPE_WRITE_WCHANS = frozenset({"pipe_write", "anon_pipe_write"})


def _read(path: str, limit: int = 4096) -> bytes | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        return os.read(fd, limit)
    except OSError:
        return None
    finally:
        os.close(fd)


def decode_wait_status(status: int) -> int:
    """A ``waitpid`` status as ``Popen.returncode`` says it: ``n`` for ``exit(n)``,
    ``-sig`` for death by a signal."""
    if os.WIFSIGNALED(status):
        return -os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


def zombie_exit_code(pid: int, start_time: float) -> int | None:
    """Exit code of the zombie ``pid`` that started at ``start_time``; ``None`` when it
    is not (any more) that zombie, or the kernel does not say."""
    raw = read_proc(pid)
    if raw is None or raw.state != "Z" or not same_start(raw.start_time, start_time):
        return None
    data = _read(f"/proc/{pid}/stat")
    if data is None:
        return None
    fields = data[data.rfind(b")") + 2 :].split()
    # state is field 3 of the whole line; exit_code is field 52 (index 49 here).
    if len(fields) < 50:
        return None
    try:
        status = int(fields[49])
    except ValueError:
        return None
    # Reaped and replaced between the two reads? Then the status is not this one's.
    again = read_proc(pid)
    if again is None or again.state != "Z" or not same_start(again.start_time, start_time):
        return None
    return decode_wait_status(status)


def wchan(pid: int) -> str | None:
    """The kernel function ``pid`` sleeps in (``None``: running, gone or hidden)."""
    data = _read(f"/proc/{pid}/wchan", 256)
    if not data:
        return None
    text = data.decode("ascii", "replace").strip()
    return None if text in ("", "0") else text


def blocked_on_pipe_write(pid: int) -> bool:
    """Is ``pid`` asleep in a write to a full pipe?"""
    return wchan(pid) in PIPE_WRITE_WCHANS
