"""The Prometheus metrics: a custom collector over one published view of ohm.

Names follow Prometheus's conventions (``ohm_`` prefix, base units, ``_total`` for
counters). Labels are bounded: agent type, status, issue type, severity, error
type (the most frequent ``MAX_ERROR_TYPES`` per agent type, the rest ``other``),
priority. Never a pid or a task id. Counters are tallies of the database, so a
restart of ohm does not reset them.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from ohm_tui import __version__
from ohm_tui.engine.model import STATUS_ORDER, AgentView, HealthReport
from ohm_tui.engine.store import BUG_PRIORITIES, Store, StoreError

UNKNOWN_STATUS = 3
MAX_ERROR_TYPES = 20
# Seconds; a check is usually milliseconds, a stuck one seconds.
DURATION_BUCKETS: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)  # fmt: skip


@dataclass(slots=True)
class Tallies:
    """Counters read from the database (they survive a restart of ohm)."""

    crashes: list[tuple[str, str, int]] = field(default_factory=list)
    respawns: list[tuple[str, bool, int]] = field(default_factory=list)
    giveups: list[tuple[str, int]] = field(default_factory=list)
    open_bugs: dict[str, int] = field(default_factory=dict)
    cost_by_type: dict[str, float] = field(default_factory=dict)
    error: str | None = None


def read_tallies(store: Store) -> Tallies:
    """Every counter in one go; a storage problem leaves them empty and says why."""
    try:
        return Tallies(
            crashes=store.crash_tally(),
            respawns=store.respawn_tally(),
            giveups=store.event_tally("gave_up"),
            open_bugs=store.open_bug_tally(),
        )
    except StoreError as exc:
        return Tallies(error=str(exc))


@dataclass
class CheckDurations:
    """A cumulative histogram of check durations (observed by the publisher)."""

    buckets: tuple[float, ...] = DURATION_BUCKETS
    counts: list[int] = field(default_factory=lambda: [0] * (len(DURATION_BUCKETS) + 1))
    total: float = 0.0

    def observe(self, seconds: float) -> None:
        i = next((n for n, b in enumerate(self.buckets) if seconds <= b), len(self.buckets))
        self.counts[i] += 1
        self.total += seconds

    def copy(self) -> CheckDurations:
        return CheckDurations(self.buckets, list(self.counts), self.total)


@dataclass(slots=True)
class Published:
    """What the endpoint serves: one consistent view, never changed once published."""

    report: HealthReport | None
    agents: list[AgentView]
    tallies: Tallies
    durations: CheckDurations
    published_at: float


def _label(value: str) -> str:
    return value if value else "unknown"


def _cap_error_types(rows: Iterable[tuple[str, str, int]]) -> dict[tuple[str, str], int]:
    """Keep the most frequent error types per agent type; fold the rest into ``other``."""
    by_type: dict[str, Counter[str]] = {}
    for agent_type, error_type, n in rows:
        by_type.setdefault(_label(agent_type), Counter())[_label(error_type)] += n
    out: dict[tuple[str, str], int] = {}
    for agent_type, counts in by_type.items():
        for i, (error_type, n) in enumerate(counts.most_common()):
            key = (agent_type, error_type if i < MAX_ERROR_TYPES else "other")
            out[key] = out.get(key, 0) + n
    return out


def families(view: Published) -> Iterator[Metric]:
    """Every metric family of one view."""
    report = view.report
    status = GaugeMetricFamily(
        "ohm_health_status",
        "Health of the orchestrator: 0 healthy, 1 degraded, 2 critical, 3 unknown "
        "(as ohm check exits)",
    )
    status.add_metric([], STATUS_ORDER.get(report.status, UNKNOWN_STATUS) if report else 3)
    yield status

    issues = GaugeMetricFamily(
        "ohm_issues", "Open issues of the last check", labels=["type", "severity"]
    )
    for (itype, severity), n in sorted(
        Counter((i.type, i.severity) for i in (report.issues if report else [])).items()
    ):
        issues.add_metric([itype, severity], n)
    yield issues

    agents = GaugeMetricFamily(
        "ohm_agents", "Agents by type and status", labels=["agent_type", "status"]
    )
    for (agent_type, agent_status), n in sorted(
        Counter((_label(a.agent_type), a.status) for a in view.agents).items()
    ):
        agents.add_metric([agent_type, agent_status], n)
    yield agents

    t = view.tallies
    crashes = CounterMetricFamily(
        "ohm_agent_crashes",
        "Agent crashes recorded (kept history)",
        labels=["agent_type", "error_type"],
    )
    for (agent_type, error_type), n in sorted(_cap_error_types(t.crashes).items()):
        crashes.add_metric([agent_type, error_type], n)
    yield crashes

    respawns = CounterMetricFamily(
        "ohm_agent_respawns", "Respawns ohm attempted", labels=["agent_type", "result"]
    )
    merged: Counter[tuple[str, str]] = Counter()
    for agent_type, ok, n in t.respawns:
        merged[(_label(agent_type), "success" if ok else "failure")] += n
    for (agent_type, result), n in sorted(merged.items()):
        respawns.add_metric([agent_type, result], n)
    yield respawns

    giveups = CounterMetricFamily(
        "ohm_agent_giveups", "Times ohm gave up respawning an agent", labels=["agent_type"]
    )
    gave: Counter[str] = Counter()
    for agent_type, n in t.giveups:
        gave[_label(agent_type)] += n
    for agent_type, n in sorted(gave.items()):
        giveups.add_metric([agent_type], n)
    yield giveups

    if report is not None and report.orchestrator_last_poll is not None:
        beat = GaugeMetricFamily(
            "ohm_orchestrator_heartbeat_timestamp_seconds",
            "When the orchestrator's loop last reported (UTC epoch seconds)",
        )
        beat.add_metric([], report.checked_at - report.orchestrator_last_poll)
        yield beat

    bugs = GaugeMetricFamily("ohm_bugs_open", "Open bugs by priority", labels=["priority"])
    for priority in BUG_PRIORITIES:
        bugs.add_metric([priority], t.open_bugs.get(priority, 0))
    for priority, n in sorted(t.open_bugs.items()):
        if priority not in BUG_PRIORITIES:
            bugs.add_metric([_label(priority)], n)
    yield bugs

    d = view.durations
    hist = HistogramMetricFamily("ohm_check_duration_seconds", "How long ohm's health checks take")
    cumulative, buckets = 0, []
    for bound, n in zip((*d.buckets, float("inf")), d.counts, strict=True):
        cumulative += n
        buckets.append(("+Inf" if bound == float("inf") else repr(float(bound)), cumulative))
    hist.add_metric([], buckets, d.total)
    yield hist

    if t.cost_by_type:
        cost = CounterMetricFamily(
            "ohm_agent_cost_usd",
            "Spend of session agents in US dollars (claude_invocations.db)",
            labels=["agent_type"],
        )
        for agent_type, usd in sorted(t.cost_by_type.items()):
            cost.add_metric([_label(agent_type)], usd)
        yield cost

    info = GaugeMetricFamily("ohm_build_info", "ohm's version", labels=["version"])
    info.add_metric([__version__], 1)
    yield info


class OhmCollector(Collector):
    """Reads whatever view ``source`` returns at scrape time (no engine lock)."""

    def __init__(self, source: Published | None = None) -> None:
        self.view = source

    def collect(self) -> Iterator[Metric]:
        if self.view is not None:
            yield from families(self.view)


def render(view: Published) -> bytes:
    """The Prometheus text exposition of one view."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(OhmCollector(view))
    return generate_latest(registry)


def write_textfile(path: str | os.PathLike[str], view: Published) -> None:
    """Write atomically (temp file + rename), as node_exporter's textfile collector needs."""
    target = Path(path)
    data = render(view)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
