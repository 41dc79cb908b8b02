"""``ohm demo``: a live sample orchestrator in a fresh directory, watched by ohm.

Every way out (``q``, Ctrl-C, SIGTERM, SIGHUP, an exception) unwinds through
the ``with`` blocks below, which stop the monitor and then the demo session, so
no demo process outlives the command.
"""

from __future__ import annotations

import argparse
import os
import time
from typing import TYPE_CHECKING

from ohm_tui.cli import output as out
from ohm_tui.cli.console import ExitSignals, load_console, run_app
from ohm_tui.cli.context import EXIT_OK, EXIT_UNKNOWN, CliError
from ohm_tui.cli.watch import StopSignals, run_watch_loop
from ohm_tui.engine.config import load_config
from ohm_tui.engine.monitor import OrchestratorHealthMonitor

if TYPE_CHECKING:
    from ohm_tui.demo.session import DemoSession


FIRST_CYCLE_WAIT = 15.0  # seconds the sample orchestrator gets to write its first state


def wait_first_cycle(monitor: OrchestratorHealthMonitor, session: DemoSession) -> None:
    """Open the console once the sample orchestrator has written its first state, so
    its first screen is the orchestrator, not "DEGRADED: state file unreadable" for
    the second it takes to start. Looks only (``record=False``): nothing is written."""
    deadline = time.monotonic() + FIRST_CYCLE_WAIT
    while time.monotonic() < deadline and session.running:
        report = monitor.check(record=False)
        if report.orchestrator_last_poll is not None:
            return
        time.sleep(0.1)


def cmd_demo(args: argparse.Namespace) -> int:
    try:
        from ohm_tui.demo.session import DemoSession
    except ImportError as exc:
        raise CliError(f"the demo is not available ({exc})", EXIT_UNKNOWN) from None
    # Fail before starting any process when the console cannot load.
    make_app = None if args.no_tui else load_console()
    data_dir = root = "?"
    with ExitSignals() as signals:
        try:
            with DemoSession(
                seed=args.seed,
                speed=args.speed,
                max_agents=args.agents,
                remove_dir=not args.keep,
                era=args.era,
            ) as session:
                data_dir = os.fspath(session.state_dir)
                root = os.fspath(session.root)
                out.emit(f"ohm demo: era {args.era} sample orchestrator running in {data_dir}")
                out.emit(f"  its root {root} holds data/ (the state dir) and tickets/")
                overrides = {**session.config_overrides(), "auto_fix": True}
                cfg = load_config(args.config or None, data_dir=data_dir, overrides=overrides)
                with OrchestratorHealthMonitor(cfg, name=f"demo:{os.getpid()}") as monitor:
                    wait_first_cycle(monitor, session)
                    if make_app is None:
                        with StopSignals() as stop:
                            try:
                                run_watch_loop(monitor, stop)
                            finally:
                                signals.cleaning_up()
                    else:
                        run_app(make_app(monitor, demo=session), signals)
        except KeyboardInterrupt:
            pass
        finally:
            signals.cleaning_up()
    if args.keep:
        out.emit(f"ohm demo: stopped; state kept in {data_dir} (tickets in {root}/tickets)")
        out.emit(f"  look back with: ohm crashes --last=1h --data-dir {data_dir}")
    else:
        out.emit(f"ohm demo: stopped; every demo process has ended; removed {root}")
    return EXIT_OK
