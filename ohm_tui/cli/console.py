"""``ohm`` / ``ohm console``: open the Textual console on a data directory.

Textual is imported only here and only when the console is asked for, so
``ohm check`` from cron does not pay for (or depend on) the UI stack.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any, Protocol

from ohm_tui.cli.context import EXIT_OK, EXIT_UNKNOWN, EXIT_USAGE, CliError, open_monitor
from ohm_tui.cli.fleet import fleet_hosts
from ohm_tui.cli.signals import SignalScope
from ohm_tui.cli.watch import listen_overrides, start_alerting, start_endpoint
from ohm_tui.fleet.hosts import Host


class ConsoleApp(Protocol):
    """What the CLI needs of the Textual app (``ohm_tui.tui.app.make_app``)."""

    @property
    def return_code(self) -> int | None: ...

    @property
    def is_running(self) -> bool: ...

    def run(self) -> Any: ...

    def exit(self) -> None: ...

    def call_from_thread(self, callback: Callable[[], Any]) -> Any: ...


AppFactory = Callable[..., ConsoleApp]  # make_app(monitor, read_only=..., demo=...)


class ExitSignals(SignalScope):
    """SIGINT, SIGTERM and SIGHUP end the console, the demo and its processes cleanly.

    - While the console runs, the first signal asks the app to quit the way ``q``
      does (from a helper thread: ``call_from_thread`` is the thread-safe door
      into Textual). An exception raised into Textual's event loop can be lost,
      and then nothing stops. A second signal forces the exit.
    - Outside the console (starting up, or ``demo --no-tui`` before its loop),
      a signal raises ``KeyboardInterrupt``, which unwinds every ``with`` block.
    - Once clean-up has begun (``cleaning_up()``), signals are ignored: a
      second Ctrl-C must not cut the clean-up short and leave orphans.
    Previous handlers are restored on exit.
    """

    def __init__(self) -> None:
        super().__init__()
        self.app: ConsoleApp | None = None
        self._asked = False
        self._cleaning = False

    def cleaning_up(self) -> None:
        self._cleaning = True

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.received = signal.Signals(signum)
        if self._cleaning:
            return
        app = self.app
        if app is not None and app.is_running and not self._asked:
            self._asked = True
            threading.Thread(target=_ask_exit, args=(app,), daemon=True).start()
            return
        raise KeyboardInterrupt(self.received.name)


def _ask_exit(app: ConsoleApp) -> None:
    with contextlib.suppress(Exception):  # the app may be closing already
        app.call_from_thread(app.exit)


def load_console() -> AppFactory:
    """``make_app`` from the tui package, or a clear error when it cannot load."""
    try:
        from ohm_tui.tui.app import make_app
    except ImportError as exc:
        raise CliError(
            f"the console is not available ({exc}); use 'ohm watch' or 'ohm check' instead",
            EXIT_UNKNOWN,
        ) from None
    factory: AppFactory = make_app
    return factory


def run_app(app: ConsoleApp, signals: ExitSignals) -> int:
    """Run the console until it quits (the app starts and stops the monitor's engine)."""
    signals.app = app
    try:
        result = app.run()
    finally:
        signals.app = None
        signals.cleaning_up()
    if app.return_code not in (None, 0):
        return app.return_code
    return result if isinstance(result, int) else EXIT_OK


def cmd_console(args: argparse.Namespace) -> int:
    hosts = fleet_hosts(args)
    if hosts is not None:
        return cmd_fleet_console(args, hosts)
    make_app = load_console()
    read_only = bool(args.read_only)
    overrides = listen_overrides(args)
    with ExitSignals() as signals:
        try:
            with open_monitor(
                args, read_only=read_only, overrides=overrides, sources_or_exit=EXIT_USAGE
            ) as monitor:
                # Only when asked on the command line: a config's listen is ohm watch's
                # port, and a console opened beside that watch must not fight for it.
                server = start_endpoint(monitor, "ohm console") if args_listen(args) else None
                # The console's engine sends alerts too (not a read-only one).
                alerting = None if read_only else start_alerting(monitor, announce=False)
                try:
                    return run_app(make_app(monitor, read_only=read_only), signals)
                finally:
                    if alerting is not None:
                        alerting.stop()
                    if server is not None:
                        server.stop()
        except KeyboardInterrupt:
            return EXIT_OK


def args_listen(args: argparse.Namespace) -> bool:
    return bool(getattr(args, "listen", None))


def cmd_fleet_console(args: argparse.Namespace, hosts: list[Host]) -> int:
    """The fleet view: read-only by nature, no local monitor, no process control."""
    if getattr(args, "listen", None):
        raise CliError("--listen serves this host's monitor; the fleet view has none")
    try:
        from ohm_tui.tui.fleet.app import make_fleet_app
    except ImportError as exc:
        raise CliError(
            f"the console is not available ({exc}); use 'ohm check --remote' instead",
            EXIT_UNKNOWN,
        ) from None
    with ExitSignals() as signals:
        try:
            return run_app(make_fleet_app(hosts), signals)
        except KeyboardInterrupt:
            return EXIT_OK
