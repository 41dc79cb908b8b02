"""The alert service: watch the engine's last report, send what changed.

One thread compares each new report with the alerts already firing (cheap: no
lock, no check of its own), hands the changes to Alertmanager and to webhook
destinations, and re-sends open alerts to Alertmanager while they stay open. Engine
events only wake it early. Sending happens on each receiver's own thread.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Sequence
from typing import Any

from ohm_tui.alerts.alertmanager import RESEND_EVERY, AlertmanagerSender
from ohm_tui.alerts.model import Alert, AlertBook
from ohm_tui.alerts.webhooks import SecretError, WebhookDestination, read_secret
from ohm_tui.engine.config import Config, ConfigError
from ohm_tui.engine.model import Event, EventKind
from ohm_tui.engine.monitor import OrchestratorHealthMonitor
from ohm_tui.engine.monitor.base import FIXER_LEASE
from ohm_tui.engine.store import Store, StoreError
from ohm_tui.engine.system import procs

log = logging.getLogger("ohm.alerts")

PERIOD = 0.25  # seconds between looks at the last report
RESOLVED_KEEP = 300.0  # seconds an ended alert stays in Alertmanager batches
ERROR_EVERY = 300.0  # seconds between two notify_error events of one receiver
MAX_CAUSES = 2000  # root causes remembered by crash id


def wanted(config: Config) -> bool:
    return bool(config.alertmanager_url or config.notify)


class AlertService:
    """Sends a monitor's open issues to Alertmanager and webhooks (see module doc)."""

    def __init__(
        self,
        monitor: OrchestratorHealthMonitor,
        *,
        instance: str | None = None,
        period: float = PERIOD,
        resend_every: float = RESEND_EVERY,
        resolved_keep: float = RESOLVED_KEEP,
        error_every: float = ERROR_EVERY,
        **sender_kw: Any,
    ) -> None:
        """``sender_kw`` (``attempts``, ``backoff``, ``timeout``, ``window``,
        ``min_interval``, ``queue_size``) tunes every receiver; tests shorten them."""
        self.monitor = monitor
        cfg = monitor.config
        self.instance = instance or socket.gethostname()
        self.period = period
        self.resend_every = resend_every
        self.resolved_keep = resolved_keep
        self.error_every = error_every
        self.book = AlertBook(self.instance)
        self._recent_ended: dict[tuple[tuple[str, str], ...], Alert] = {}
        self._causes: dict[int, str | None] = {}
        self._reader: Store | None = None
        self._last_checked_at: float | None = None
        self._last_sent = float("-inf")
        self._errors_at: dict[str, float] = {}
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        am_kw = {k: v for k, v in sender_kw.items() if k not in ("window", "min_interval")}
        self.alertmanager: AlertmanagerSender | None = None
        if cfg.alertmanager_url:
            self.alertmanager = AlertmanagerSender(
                cfg.alertmanager_url,
                self._error_reporter("alertmanager"),
                resend_every=resend_every,
                **am_kw,
            )
        self.destinations: list[WebhookDestination] = []
        for n, table in enumerate(cfg.notify):
            secret = None
            if table.get("secret_file"):
                try:
                    secret = read_secret(cfg.path(table["secret_file"]))
                except SecretError as exc:
                    raise ConfigError(f"notify[{n}].secret_file", str(exc)) from None
            self.destinations.append(
                WebhookDestination(
                    table["url"],
                    table["format"],
                    self.instance,
                    self._error_reporter(f"notify[{n}]"),
                    secret=secret,
                    min_severity=table.get("min_severity", "warning"),
                    **sender_kw,
                )
            )

    # ------------------------------------------------------------ lifecycle
    def start(self) -> None:
        if self._thread is not None:
            return
        if self.alertmanager is not None:
            self.alertmanager.start()
        for d in self.destinations:
            d.start()
        self.monitor.add_listener(self._on_event)
        self._thread = threading.Thread(target=self._loop, name="ohm-alerts", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0, *, flush: float = 2.0) -> None:
        """Stop; changes still held for a grouped message go out first, waiting at most
        ``flush`` seconds for receivers (a down one must not hold up a shutdown)."""
        self.monitor.remove_listener(self._on_event)
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        deadline = time.monotonic() + flush
        for d in self.destinations:
            d.tick(time.time(), force=True)
        senders = [d.sender for d in self.destinations]
        for s in [self.alertmanager, *senders]:
            if s is not None:
                s.drain(max(0.0, deadline - time.monotonic()))
        if self.alertmanager is not None:
            self.alertmanager.stop(timeout)
        for d in self.destinations:
            d.stop(timeout)
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    def _on_event(self, event: Event) -> None:
        """Called on an engine thread: only wake ours."""
        if event.kind != EventKind.NOTIFY_ERROR:
            self._wake.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()  # before the step: a wake-up during it is not lost
            try:
                self.step(time.time())
            except Exception:  # alerts must outlive one bad report
                log.exception("alerts: step failed")
            self._wake.wait(self.period)

    # ------------------------------------------------------------ one step
    def step(self, now: float) -> None:
        """Look at the last report once; queue what changed, and re-sends that are due."""
        report = self.monitor.last_report
        started: list[Alert] = []
        ended: list[Alert] = []
        if report is not None and report.checked_at != self._last_checked_at:
            self._last_checked_at = report.checked_at
            started, ended = self.book.update(report, self._root_causes(report))
        for a in ended:
            self._recent_ended[a.key] = a
        for a in started:  # firing again: no longer ended
            self._recent_ended.pop(a.key, None)
        self._recent_ended = {
            k: a
            for k, a in self._recent_ended.items()
            if a.ends_at is not None and now - a.ends_at < self.resolved_keep
        }
        if self.alertmanager is not None and (
            started or ended or now - self._last_sent >= self.resend_every
        ):
            if self.book.firing or self._recent_ended or started or ended:
                batch = [*self.book.firing.values(), *self._recent_ended.values()]
                self.alertmanager.submit(batch, now)
            self._last_sent = now
        if (started or ended) and self.destinations and self._another_fixer(now):
            # A console opened beside `ohm watch` sees the same issues: the monitor
            # holding the fixer lease tells people, once (Alertmanager dedups itself).
            started, ended = [], []
        for d in self.destinations:
            if started or ended:
                d.add(started, ended, now)
            d.tick(now)

    def _another_fixer(self, now: float) -> bool:
        """Does another live monitor hold this data dir's fixer lease?"""
        try:
            holder = self._read_store().lease_holder(FIXER_LEASE)
        except StoreError as exc:
            log.debug("alerts: cannot read the fixer lease: %s", exc)
            return False  # unknown: rather a message twice than none
        if holder is None or holder["holder_pid"] is None:
            return False
        pid, created = int(holder["holder_pid"]), float(holder["holder_create_time"] or 0.0)
        if pid == os.getpid() or float(holder["expires_ts"]) <= now:
            return False
        return procs.is_running(pid, created)

    def _read_store(self) -> Store:
        """ohm's own read-only connection (never the engine's, never under its lock)."""
        if self._reader is None:
            self._reader = Store.open_readonly(self.monitor.config.database_path)
        return self._reader

    def _root_causes(self, report: Any) -> dict[int, str]:
        """Root causes of crash issues, read once per crash through ohm's own
        read-only connection (never the engine's, never under its lock)."""
        out: dict[int, str] = {}
        for issue in report.issues:
            cid = issue.crash_id
            if cid is None:
                continue
            if cid not in self._causes:
                self._causes[cid] = self._read_cause(cid)
                if len(self._causes) > MAX_CAUSES:
                    self._causes.pop(next(iter(self._causes)))
            cause = self._causes[cid]
            if cause:
                out[cid] = cause
        return out

    def _read_cause(self, crash_id: int) -> str | None:
        try:
            row = self._read_store().get_crash(crash_id)
        except StoreError as exc:
            log.debug("alerts: cannot read crash %s: %s", crash_id, exc)
            return None
        return row.root_cause if row is not None else None

    # ------------------------------------------------------------ errors
    def _error_reporter(self, receiver: str) -> Any:
        def report(message: str) -> None:
            self.notify_error(receiver, message)

        return report

    def notify_error(self, receiver: str, message: str) -> None:
        """A ``notify_error`` event, at most one per receiver per ``error_every`` (a down
        receiver must not flood the timeline); every failure is logged."""
        log.warning("alerts: %s", message)
        now = time.monotonic()
        last = self._errors_at.get(receiver)
        if last is not None and now - last < self.error_every:
            return
        self._errors_at[receiver] = now
        self.monitor.event(EventKind.NOTIFY_ERROR, message[:500], data={"receiver": receiver})

    # ------------------------------------------------------------ for tests and faces
    def queued(self) -> Sequence[int]:
        """Messages waiting per receiver (Alertmanager first)."""
        counts = [d.sender.pending() for d in self.destinations]
        if self.alertmanager is not None:
            counts.insert(0, self.alertmanager.pending())
        return counts


def start_alerts(monitor: OrchestratorHealthMonitor, **kw: Any) -> AlertService | None:
    """The alert service the config asks for, started; None when none is configured or
    the monitor is read-only (it records nothing, so it sends nothing either).
    Raises ``ConfigError`` for a secret file that cannot be used."""
    if not wanted(monitor.config) or monitor.read_only:
        return None
    service = AlertService(monitor, **kw)
    service.start()
    return service
