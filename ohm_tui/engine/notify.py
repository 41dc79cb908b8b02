"""Telling people: a log line always, a terminal bell if asked, a command if configured.

Alerts must never block or break the engine: the command runs in a short-lived
thread with a timeout, failures are logged, and identical alerts are sent at most
once a minute so a flapping fault does not page someone a hundred times.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

from ohm_tui.engine.config import Config
from ohm_tui.engine.timeutil import now as _now

log = logging.getLogger("ohm.alert")

NOTIFY_TIMEOUT = 5.0
MAX_OUTPUT = 8192
_MAX_THREADS = 4


@dataclass(slots=True)
class CommandResult:
    """How an external hook command went."""

    ok: bool
    returncode: int | None
    timed_out: bool
    error: str | None  # why it failed, for people
    output: str  # the tail of stdout+stderr, bounded


def run_command(
    argv: Sequence[str], payload: Any, *, timeout: float, max_output: int = MAX_OUTPUT
) -> CommandResult:
    """Run ``argv`` (no shell) with ``payload`` as JSON on stdin, bounded in time and output.

    stdin and output go through temporary files, not pipes, so a hook that does not
    read its input or writes a lot can never block ohm. On timeout the hook's whole
    process group is killed (it runs in its own session).
    """
    data = json.dumps(payload, default=str).encode("utf-8")
    try:
        with tempfile.TemporaryFile() as stdin, tempfile.TemporaryFile() as out:
            stdin.write(data)
            stdin.seek(0)
            try:
                proc = subprocess.Popen(
                    list(argv),
                    stdin=stdin,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    close_fds=True,
                )
            except OSError as exc:
                return CommandResult(
                    False, None, False, f"cannot run {argv[0]!r}: {exc.strerror or exc}", ""
                )
            timed_out = False
            try:
                code: int | None = proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                timed_out = True
                _kill_group(proc)
                code = proc.wait()
            out.seek(0, os.SEEK_END)
            size = out.tell()
            out.seek(max(0, size - max_output))
            tail = out.read().decode("utf-8", "replace")
    except OSError as exc:
        return CommandResult(False, None, False, f"cannot run hook: {exc}", "")
    if timed_out:
        return CommandResult(False, code, True, f"timed out after {timeout:g}s", tail)
    if code != 0:
        return CommandResult(False, code, False, f"exited with status {code}", tail)
    return CommandResult(True, code, False, None, tail)


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    # The child is not reaped yet, so its pid (= its process group) cannot be reused.
    try:
        if hasattr(os, "killpg"):
            os.killpg(proc.pid, signal.SIGKILL)
        else:  # pragma: no cover - not POSIX
            proc.kill()
    except OSError:
        with contextlib.suppress(OSError):
            proc.kill()


class Notifier:
    """Sends alerts; safe to call from any thread, never raises."""

    def __init__(
        self,
        config: Config,
        *,
        stream: TextIO | None = None,
        rate_limit: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.stream = stream
        self.rate_limit = rate_limit
        self._clock = clock
        self._last: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        # Every alert is also an engine event. A face that prints each event (``ohm
        # watch``) turns the alert's own log line off, so nothing is said twice.
        self.log_alerts = True

    def alert(self, level: str, message: str, *, data: dict[str, Any] | None = None) -> None:
        """Log, ring, and run ``notify_command``; identical alerts once per ``rate_limit``."""
        try:
            if not self._allowed(level, message):
                log.debug("alert suppressed (sent less than %gs ago): %s", self.rate_limit, message)
                return
            critical = level.lower() == "critical"
            if self.log_alerts:
                log.log(logging.CRITICAL if critical else logging.WARNING, "%s", message)
            if self.config.sound:
                self._bell()
            if self.config.notify_command:
                payload = {"level": level, "message": message, "data": data or {}, "ts": _now()}
                self._start(list(self.config.notify_command), payload)
        except Exception:  # an alert must never take the engine down
            log.exception("alerting failed")

    def _allowed(self, level: str, message: str) -> bool:
        key = (level, message)
        now = self._clock()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self.rate_limit:
                return False
            if len(self._last) > 1000:
                cutoff = now - self.rate_limit
                self._last = {k: t for k, t in self._last.items() if t >= cutoff}
            self._last[key] = now
            return True

    def _bell(self) -> None:
        stream = self.stream if self.stream is not None else sys.stderr
        try:
            stream.write("\a")
            stream.flush()
        except (OSError, ValueError):
            pass

    def _start(self, argv: list[str], payload: dict[str, Any]) -> None:
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()]
            if len(self._threads) >= _MAX_THREADS:
                log.warning("notify_command: %d still running; not starting another", _MAX_THREADS)
                return
            thread = threading.Thread(
                target=self._run, args=(argv, payload), name="ohm-notify", daemon=True
            )
            self._threads.append(thread)
        thread.start()

    @staticmethod
    def _run(argv: list[str], payload: dict[str, Any]) -> None:
        result = run_command(argv, payload, timeout=NOTIFY_TIMEOUT)
        if not result.ok:
            log.warning(
                "notify_command %s failed: %s%s",
                argv[0],
                result.error,
                f"; output: {result.output.strip()[-500:]}" if result.output.strip() else "",
            )

    def flush(self, timeout: float = NOTIFY_TIMEOUT + 1.0) -> bool:
        """Wait for running notify commands (at shutdown). True when all finished."""
        deadline = time.monotonic() + timeout
        with self._lock:
            threads = list(self._threads)
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()))
        return not any(t.is_alive() for t in threads)
