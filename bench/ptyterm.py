"""Run a program on a pseudo-terminal of a given size, as an SSH session would, and count
every byte it writes to the terminal (with the time each chunk arrived)."""

from __future__ import annotations

import contextlib
import fcntl
import os
import select
import struct
import termios
import threading
import time
from collections.abc import Mapping, Sequence

from bench.common import Procs


class PtyProgram:
    """``argv`` with a pty as its stdin, stdout and stderr; a thread drains the master side."""

    def __init__(
        self,
        procs: Procs,
        argv: Sequence[str],
        *,
        cols: int = 80,
        rows: int = 24,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
    ) -> None:
        self.master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        full_env = dict(os.environ if env is None else env)
        full_env.setdefault("TERM", "xterm-256color")
        full_env.setdefault("COLORTERM", "truecolor")
        full_env["COLUMNS"], full_env["LINES"] = str(cols), str(rows)
        self.started = time.perf_counter()
        self.p = procs.start(
            list(argv),
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=full_env,
            cwd=cwd,
            start_new_session=True,  # the pty becomes its controlling terminal
        )
        os.close(slave)
        self.lock = threading.Lock()
        self.chunks: list[tuple[float, bytes]] = []  # (perf_counter, data)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._drain, daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        while not self._stop.is_set():
            r, _, _ = select.select([self.master], [], [], 0.1)
            if not r:
                continue
            try:
                data = os.read(self.master, 65536)
            except OSError:  # the program closed the terminal (EIO)
                return
            if not data:
                return
            with self.lock:
                self.chunks.append((time.perf_counter(), data))

    @property
    def pid(self) -> int:
        return self.p.pid

    def bytes_between(self, t0: float, t1: float) -> int:
        with self.lock:
            return sum(len(d) for t, d in self.chunks if t0 <= t < t1)

    def first_time(self, needle: bytes, after: float = 0.0) -> float | None:
        """perf_counter time of the chunk in which ``needle`` first showed (None: not yet)."""
        with self.lock:
            seen = b""
            for t, d in self.chunks:
                if t < after:
                    continue
                seen = (seen + d)[-(len(needle) + 65536) :]
                if needle in seen:
                    return t
        return None

    def output(self) -> bytes:
        with self.lock:
            return b"".join(d for _, d in self.chunks)

    def send(self, data: bytes) -> None:
        os.write(self.master, data)

    def close(self, procs: Procs) -> None:
        procs.stop(self.p, grace=10.0)
        self._stop.set()
        self._thread.join(2.0)
        with contextlib.suppress(OSError):
            os.close(self.master)
