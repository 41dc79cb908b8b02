"""A Python agent that crashes: the same program for ohm, the peers and the floor.

Usage::

    crasher.py RECORD LIFETIME      start, live LIFETIME seconds, crash with exit code 1
    crasher.py RECORD signal        start, crash when SIGUSR1 arrives (the start line
                                    is written once SIGUSR1 is held: ready for it)

It appends ``start <epoch> <pid>`` to RECORD first thing, and ``death <epoch>
<pid>`` just before ``os._exit(1)``: every latency in the benchmark is measured
from the agent's own clock readings, so no supervisor can hide its delays. The
traceback goes to stderr (the agent's log), as a real crash's would, because
that is how a monitor that is not the parent tells a crash from a clean exit.
Only modules Python loads at start-up anyway are imported before the start line.
"""

import os
import sys
import time

STARTED = time.time()


def _append(path: str, line: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        os.write(fd, line.encode())  # one small O_APPEND write: never interleaved
    finally:
        os.close(fd)


def crash(path: str, why: str) -> None:
    try:
        raise RuntimeError(f"bench agent crashed: {why}")
    except RuntimeError:
        sys.excepthook(*sys.exc_info())  # a real traceback in the log
    sys.stderr.flush()
    _append(path, f"death {time.time()!r} {os.getpid()}\n")
    os._exit(1)


def main() -> None:
    path, mode = sys.argv[1], sys.argv[2]
    if mode == "signal":
        import signal

        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})
        _append(path, f"start {STARTED!r} {os.getpid()}\n")  # ready: SIGUSR1 is held now
        signal.sigwait({signal.SIGUSR1})
        crash(path, "told to")
    _append(path, f"start {STARTED!r} {os.getpid()}\n")
    time.sleep(float(mode))
    crash(path, f"after {mode} s")


main()
