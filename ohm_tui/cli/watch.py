"""``ohm watch``: the headless monitor loop, for systemd or a terminal.

One line per engine event, flushed at once so ``journalctl -f`` shows it live.
SIGTERM, SIGINT (Ctrl-C) and SIGHUP only set a flag: the main thread then stops
the monitor in order, so a stop never leaves a half-done fix or a traceback.
"""

from __future__ import annotations

import argparse
import os
import signal
import threading
from types import FrameType
from typing import TYPE_CHECKING, Any

from ohm_tui.cli import output as out
from ohm_tui.cli.context import EXIT_OK, CliError, build_config, open_monitor, require_data_dir
from ohm_tui.cli.signals import STOP_SIGNALS, SignalScope
from ohm_tui.engine.config import Config
from ohm_tui.engine.detect import headline
from ohm_tui.engine.model import Event, HealthReport
from ohm_tui.engine.monitor import OrchestratorHealthMonitor
from ohm_tui.engine.sources import registry

if TYPE_CHECKING:
    from ohm_tui.alerts.service import AlertService
    from ohm_tui.web.server import WebServer


class StopSignals(SignalScope):
    """While active, the stop signals set ``event`` instead of killing the process."""

    def __init__(self, signals: tuple[signal.Signals, ...] = STOP_SIGNALS) -> None:
        super().__init__(signals)
        self.event = threading.Event()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        super()._handle(signum, frame)
        self.event.set()


def format_event(event: Event) -> str:
    """``<ISO time> <kind> <agent> task=<id>: <message>`` on one line."""
    parts = [out.local_iso(event.ts), out.clean(event.kind)]
    if event.agent_type or event.agent_pid is not None:
        parts.append(out.agent_label(event.agent_type, event.agent_pid))
    if event.task_id:
        parts.append(f"task={out.clean(event.task_id)}")
    if event.bug_number is not None:
        parts.append(out.bug_label(event.bug_number))
    return " ".join(parts) + ": " + out.clean(event.message)


class EventPrinter:
    """The listener: called from engine threads, so lines are printed under a lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def __call__(self, event: Event) -> None:
        line = format_event(event)
        with self._lock:
            out.emit(line)


def status_line(report: HealthReport) -> str:
    """The status when watching starts: a status that does not change later is told by
    no event, and an operator must not wait minutes to learn it is already degraded."""
    cause = headline.headline(report)
    return f"ohm watch: status {report.status}" + (f": {out.clean(cause)}" if cause else "")


def run_watch_loop(monitor: OrchestratorHealthMonitor, stop: StopSignals) -> int:
    """Print events until a stop signal, then stop the monitor cleanly.

    Each event is printed once: alerts (a bug filed, a give-up) are events too, so
    their own log lines are off here.
    """
    monitor.notifier.log_alerts = False
    monitor.add_listener(EventPrinter())
    monitor.start()
    try:
        while monitor.last_report is None and not stop.event.wait(0.05):
            pass
        if monitor.last_report is not None:
            out.emit(status_line(monitor.last_report))
        while not stop.event.wait(0.5):
            pass
    finally:
        reason = stop.received.name if stop.received else "exit"
        out.emit(f"ohm watch: stopping ({reason})")
        monitor.stop()
    out.emit("ohm watch: stopped")
    return EXIT_OK


def start_endpoint(
    monitor: OrchestratorHealthMonitor, label: str = "ohm watch"
) -> WebServer | None:
    """The HTTP endpoint the config asks for (``listen``), started; None without one."""
    cfg = monitor.config
    if not cfg.listen:
        return None
    from ohm_tui.web.access import AccessError, parse_listen, read_token_file
    from ohm_tui.web.server import WebServer

    try:
        address = parse_listen(cfg.listen)
        token = read_token_file(cfg.path(cfg.token_file)) if cfg.token_file else None
        server = WebServer(monitor, address, token)
    except AccessError as exc:
        raise CliError(str(exc)) from None
    except OSError as exc:
        raise CliError(f"cannot listen on {cfg.listen}: {exc.strerror or exc}") from None
    server.start()
    auth = "bearer token required" if token else "no token (loopback only)"
    out.emit(f"{label}: serving {server.url}/metrics and {server.url}/api/v1 ({auth})")
    return server


def start_alerting(
    monitor: OrchestratorHealthMonitor, *, announce: bool = True
) -> AlertService | None:
    """Alerts to Alertmanager and ``[[notify]]`` webhooks, when the config asks; None
    otherwise (and for a read-only monitor). A secret file that cannot be used stops
    ohm with its reason."""
    cfg = monitor.config
    if not (cfg.alertmanager_url or cfg.notify) or monitor.read_only:
        return None
    from ohm_tui.alerts.http import redact
    from ohm_tui.alerts.service import start_alerts
    from ohm_tui.engine.config import ConfigError

    try:
        service = start_alerts(monitor)
    except ConfigError as exc:
        raise CliError(str(exc)) from None
    if service is not None and announce:
        to = [f"Alertmanager {redact(cfg.alertmanager_url)}"] if cfg.alertmanager_url else []
        to += [f"{n['format']} {redact(n['url'])}" for n in cfg.notify]
        out.emit(f"ohm watch: sending alerts to {', '.join(to)}")
    return service


def listen_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """``--listen`` / ``--token-file`` as config overrides (for watch and the console)."""
    overrides: dict[str, Any] = {}
    if getattr(args, "listen", None):
        overrides["listen"] = args.listen
    if getattr(args, "token_file", None):
        # Relative to where the command runs, not to the data directory.
        overrides["token_file"] = os.path.abspath(args.token_file)
    return overrides


def cmd_watch(args: argparse.Namespace) -> int:
    overrides = listen_overrides(args)
    if args.interval is not None:
        overrides["health_check_interval"] = args.interval
    if args.no_fix:
        overrides["auto_fix"] = False
    with StopSignals() as stop:
        if not wait_for_sources(build_config(args, overrides), stop):
            out.emit("ohm watch: stopped")
            return EXIT_OK
        return watch_with(args, overrides, stop)


SOURCE_POLL = 1.0  # seconds between looks for the orchestrator's first state


def wait_for_sources(cfg: Config, stop: StopSignals) -> bool:
    """Wait, writing nothing, until the data directory holds some orchestrator state.

    ``ohm watch`` may start before the orchestrator (a systemd unit ordered first, a
    reboot): waiting is what it should do, but creating ohm's database in a directory
    that is not the orchestrator's (a typo) would leave litter and show "healthy".
    False when a stop signal came first."""
    require_data_dir(cfg)
    if registry.any_present(cfg):
        return True
    out.emit(
        f"ohm watch: no orchestrator state in {cfg.data_dir} yet "
        f"(looked for {registry.looked_for(cfg)}); waiting for it (stop with Ctrl-C)"
    )
    while not stop.event.wait(SOURCE_POLL):
        if registry.any_present(cfg):
            out.emit("ohm watch: orchestrator state found")
            return True
    return False


def watch_with(args: argparse.Namespace, overrides: dict[str, Any], stop: StopSignals) -> int:
    """Watch a directory known to hold the orchestrator's state, until a stop signal."""
    with open_monitor(args, overrides=overrides) as monitor:
        cfg = monitor.config
        fixing = "on" if monitor.auto_fix else "off"
        server = start_endpoint(monitor)
        try:
            alerting = start_alerting(monitor)
        except CliError:
            if server is not None:
                server.stop()
            raise
        out.emit(
            f"ohm watch: watching {cfg.data_dir} every {cfg.health_check_interval:g}s, "
            f"auto-fix {fixing} (stop with Ctrl-C or SIGTERM)"
        )
        try:
            return run_watch_loop(monitor, stop)
        finally:
            if alerting is not None:
                alerting.stop()
            if server is not None:
                server.stop()
