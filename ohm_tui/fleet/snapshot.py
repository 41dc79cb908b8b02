"""Polling the fleet: each host's last answer, its reachability, and the fleet's worst status."""

from __future__ import annotations

import dataclasses
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypeVar

from ohm_tui.engine import timeutil
from ohm_tui.engine.model import Ack, AgentView, BugRow, CrashRow, Issue
from ohm_tui.fleet.client import TIMEOUT, RemoteError, get_json
from ohm_tui.fleet.hosts import Host

CRASH_WINDOW = "24h"
LIMIT = 200  # rows per host and listing: a view, not an archive

T = TypeVar("T")


class HostStatus(StrEnum):
    """A host's status as the fleet sees it: its own, or that it did not answer."""

    HEALTHY = "healthy"
    DEGRADED = "degraded"
    CRITICAL = "critical"
    UNREACHABLE = "unreachable"


# Nagios exit codes. An unreachable host is unknown (3); the fleet's worst ranks
# critical above unknown (what we know is critical beats what we cannot see),
# and unknown above degraded (a host we cannot see may be worse than degraded).
EXIT_CODES = {
    HostStatus.HEALTHY: 0,
    HostStatus.DEGRADED: 1,
    HostStatus.CRITICAL: 2,
    HostStatus.UNREACHABLE: 3,
}
RANK = {
    HostStatus.HEALTHY: 0,
    HostStatus.DEGRADED: 1,
    HostStatus.UNREACHABLE: 2,
    HostStatus.CRITICAL: 3,
}


def worst(statuses: list[HostStatus]) -> HostStatus:
    """The fleet's status: critical > unreachable (unknown) > degraded > healthy."""
    return max(statuses, key=RANK.__getitem__, default=HostStatus.UNREACHABLE)


def from_dict(cls: type[T], doc: Any) -> T:
    """A model from its ``to_dict`` JSON, ignoring keys a newer host may add."""
    if not isinstance(doc, dict):
        raise RemoteError(f"expected an object for {cls.__name__}, got {type(doc).__name__}")
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    try:
        return cls(**{k: v for k, v in doc.items() if k in names})
    except TypeError as exc:
        raise RemoteError(f"{cls.__name__}: {exc}") from None


def _issue(doc: Any) -> Issue:
    ack = doc.get("ack") if isinstance(doc, dict) else None
    issue = from_dict(Issue, {k: v for k, v in doc.items() if k != "ack"})
    if isinstance(ack, dict):
        try:
            issue.ack = from_dict(Ack, ack)
        except RemoteError:
            issue.ack = None
    return issue


def _rows(cls: type[T], doc: Any) -> list[T]:
    if not isinstance(doc, list):
        raise RemoteError(f"expected a list of {cls.__name__}")
    return [from_dict(cls, d) for d in doc]


@dataclass(slots=True)
class HostView:
    """One host: its last good answer (kept while it does not answer) and whether it answers."""

    host: Host
    reachable: bool = False
    last_ok_at: float | None = None  # UTC epoch of its last full answer; None: never
    error: str | None = None  # why the last poll failed
    reported: str | None = None  # the host's own status at its last answer
    checked_at: float | None = None
    issues: list[Issue] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    agents: list[AgentView] = field(default_factory=list)
    crashes: list[CrashRow] = field(default_factory=list)
    bugs: list[BugRow] = field(default_factory=list)

    @property
    def status(self) -> HostStatus:
        if not self.reachable or self.reported not in ("healthy", "degraded", "critical"):
            return HostStatus.UNREACHABLE
        return HostStatus(self.reported)


@dataclass(slots=True)
class FleetSnapshot:
    """Every host at one poll, ready for a face to draw (immutable once handed over)."""

    hosts: list[HostView]
    taken_at: float

    @property
    def status(self) -> HostStatus:
        return worst([h.status for h in self.hosts])

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.status]

    def host(self, name: str) -> HostView | None:
        return next((h for h in self.hosts if h.host.name == name), None)


def fetch(host: Host, timeout: float = TIMEOUT, *, full: bool = True) -> HostView:
    """One host's status (and with ``full`` its agents, crashes and open bugs), or a
    ``RemoteError``."""
    status = get_json(host, "/api/v1/status", timeout=timeout)
    if not isinstance(status, dict) or "status" not in status:
        raise RemoteError("/api/v1/status: not an ohm status document")
    view = HostView(host=host, reachable=True, last_ok_at=timeutil.now())
    view.reported = str(status["status"])
    checked = status.get("checked_at")
    view.checked_at = float(checked) if isinstance(checked, int | float) else None
    view.issues = [_issue(d) for d in status.get("issues") or []]
    metrics = status.get("metrics")
    view.metrics = metrics if isinstance(metrics, dict) else {}
    if not full:
        return view
    view.agents = _rows(AgentView, get_json(host, "/api/v1/agents", timeout=timeout))
    crashes = f"/api/v1/crashes?last={CRASH_WINDOW}&limit={LIMIT}"
    view.crashes = _rows(CrashRow, get_json(host, crashes, timeout=timeout))
    bugs = f"/api/v1/bugs?status=open&limit={LIMIT}"
    view.bugs = _rows(BugRow, get_json(host, bugs, timeout=timeout))
    return view


class FleetPoller:
    """Polls every host in parallel; a silent host keeps its last view, marked unreachable."""

    def __init__(self, hosts: list[Host], *, timeout: float = TIMEOUT) -> None:
        self.hosts = list(hosts)
        self.timeout = timeout
        self._views = {h.name: HostView(host=h, error="not polled yet") for h in hosts}
        self._lock = threading.Lock()

    def _poll_one(self, host: Host, full: bool = True) -> HostView:
        try:
            return fetch(host, self.timeout, full=full)
        except RemoteError as exc:
            with self._lock:
                last = self._views[host.name]
            # Last-known rows stay as they were: a silent host is not a crash of its agents.
            return dataclasses.replace(last, reachable=False, error=str(exc))

    def poll(self, *, full: bool = True) -> FleetSnapshot:
        """Every host once, in parallel (so one slow host costs one timeout, not n)."""
        workers = max(1, min(16, len(self.hosts)))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ohm-fleet") as pool:
            views = list(pool.map(lambda h: self._poll_one(h, full), self.hosts))
        with self._lock:
            for v in views:
                self._views[v.host.name] = v
        return FleetSnapshot(hosts=views, taken_at=timeutil.now())

    def poll_status(self) -> FleetSnapshot:
        """Only each host's status (what ``ohm check --remote`` needs)."""
        return self.poll(full=False)
