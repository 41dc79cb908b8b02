"""``ohm`` / ``ohm console``: open the Textual console on a data directory.

Textual is imported only here and only when the console is asked for, so
``ohm check`` from cron does not pay for (or depend on) the UI stack.
"""

from __future__ import annotations

import argparse
import signal
import threading
from collections.abc import Callable
from types import FrameType, TracebackType
from typing import Any

from ohm_tui.cli.context import EXIT_OK, EXIT_UNKNOWN, CliError, open_monitor
from ohm_tui.engine.monitor import OrchestratorHealthMonitor

ConsoleRunner = Callable[..., Any]  # run_console(monitor, read_only=...) -> int

_TERMINATE = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class InterruptOnSignal:
    """While active, SIGINT, SIGTERM and SIGHUP raise ``KeyboardInterrupt`` in the main thread.

    That unwinds every ``with``/``finally`` on the way out, which is how the
    console and the demo guarantee the monitor and demo processes are stopped
    whichever way the process is asked to end. Only the first signal raises:
    a second Ctrl-C must not cut the clean-up short and leave orphans.
    """

    def __init__(self) -> None:
        self.received: signal.Signals | None = None
        self._previous: dict[signal.Signals, Any] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.received is not None:
            return  # already unwinding
        self.received = signal.Signals(signum)
        raise KeyboardInterrupt(self.received.name)

    def __enter__(self) -> InterruptOnSignal:
        if threading.current_thread() is threading.main_thread():
            for sig in _TERMINATE:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous.clear()


def load_console() -> ConsoleRunner:
    """``run_console`` from the tui package, or a clear error when it cannot load."""
    try:
        from ohm_tui.tui.app import run_console
    except ImportError as exc:
        raise CliError(
            f"the console is not available ({exc}); use 'ohm watch' or 'ohm check' instead",
            EXIT_UNKNOWN,
        ) from None
    runner: ConsoleRunner = run_console
    return runner


def run_console_on(
    runner: ConsoleRunner, monitor: OrchestratorHealthMonitor, *, read_only: bool = False
) -> int:
    """Run the console (it starts and stops the monitor's engine); its exit code."""
    result = runner(monitor, read_only=read_only)
    return result if isinstance(result, int) else EXIT_OK


def cmd_console(args: argparse.Namespace) -> int:
    runner = load_console()
    with InterruptOnSignal():
        try:
            read_only = bool(args.read_only)
            with open_monitor(args, read_only=read_only) as monitor:
                return run_console_on(runner, monitor, read_only=read_only)
        except KeyboardInterrupt:
            return EXIT_OK
