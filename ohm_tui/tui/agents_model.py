"""The agents table's model, built in the snapshot worker so the UI thread only applies it.

At 5,000 agents, building and sanitizing cells, measuring them and sorting them
took most of a frame on the UI thread. Here, off it, each agent becomes an
:class:`AgentRow` (its cleaned cell texts, their widths, its filter text) that is
reused while what it shows is unchanged; the rows are filtered and sorted for the
view the operator has chosen, and the widget draws only the rows in view.
Nothing here touches a widget (no Textual import): the worker thread may run it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from rich.cells import cell_len

from ohm_tui.cli.table import Column
from ohm_tui.engine.model import AgentView
from ohm_tui.engine.sources.invocations import format_usd
from ohm_tui.tui import text

# (label, key, how it reads at a narrow width). Priority 0 is always shown; when the
# table is too narrow, the highest number goes first (as `ohm agents` does), so an
# 80-column table keeps whole words instead of squeezing Type and Task to "arc…".
COLUMNS: list[tuple[str, str]] = [
    ("PID", "pid"),
    ("Type", "type"),
    ("Task", "task"),
    ("Status", "status"),
    ("Uptime", "uptime"),
    ("CPU", "cpu"),
    ("Memory", "mem"),
    ("Resp", "respawns"),
    ("Cost", "cost"),  # the task's spend, last 24 h (session agents; hidden when unknown)
    ("Last log line", "last"),
]
LAYOUT: dict[str, Column] = {
    "pid": Column("PID"),
    "type": Column("Type", min_width=18),
    "task": Column("Task", priority=1, min_width=16),
    "status": Column("Status"),
    "uptime": Column("Uptime", priority=3),
    "cpu": Column("CPU", priority=4),
    "mem": Column("Memory", priority=5),
    "respawns": Column("Resp", priority=2),
    "cost": Column("Cost", priority=2),
    "last": Column("Last log line", min_width=16, long=True),
}
RIGHT = {"cpu", "mem", "cost"}
"""Numbers line up on the right."""
KEYS = [key for _, key in COLUMNS]

# Problems first in the default order, so a crash is never below the fold.
STATUS_RANK: dict[str, int] = {
    "crashed": 0,
    "given_up": 1,
    "respawn_failed": 1,
    "respawning": 2,
    "zombie": 3,
    "stalled": 4,
    "stale": 5,
    "running": 6,
    "completed": 7,
    "killed": 8,
}
LIVE_STATUSES = {"running", "stalled", "zombie"}


def status_label(agent: AgentView, now: float) -> str:
    """The status as people read it: ``respawning in 4s``, ``given up`` (as the CLI shows it)."""
    return text.agent_status(agent, now)


def uptime(agent: AgentView, now: float) -> float | None:
    return text.agent_uptime(agent, now)


def cost_label(agent: AgentView) -> str:
    """The agent's task spend (``$0.75``), ``-`` when no invocation names it."""
    return "-" if agent.cost_usd is None else format_usd(agent.cost_usd)


def shown_signature(agent: AgentView, now: float) -> tuple[object, ...]:
    """What a row shows, cheaply: equal signatures draw the same row.

    Raw CPU and memory jitter every sample while the shown "13.8 MiB" and "0.0%"
    do not, so the signature holds the shown texts (from cached formatters), not
    the raw numbers.
    """
    up = uptime(agent, now)
    return (
        agent.pid,
        agent.agent_type,
        agent.task_id,
        status_label(agent, now),
        text.duration(up),
        text.percent(agent.cpu_percent),
        text.size(agent.rss_bytes),
        agent.respawns,
        agent.max_respawns,
        cost_label(agent),
        agent.reason or agent.last_log_line,
    )


def matches(agent: AgentView, needle: str, now: float) -> bool:
    """The filter: a case-insensitive substring of type, task or status."""
    return not needle or needle.lower() in haystack(agent, now)


def haystack(agent: AgentView, now: float) -> str:
    """What the filter searches, lower-cased once: type, task and status (both spellings)."""
    fields = (agent.agent_type, agent.task_id or "", status_label(agent, now), agent.status)
    return "\n".join(text.clean(value).lower() for value in fields)


@dataclass(frozen=True)
class SortKey:
    label: str
    key: Callable[[AgentView, float], tuple[object, ...]]
    reverse: bool = False
    column: str = ""
    """The column whose label carries this sort's ▲ / ▼."""


SORTS: list[SortKey] = [
    SortKey(
        "problems first",
        lambda a, n: (STATUS_RANK.get(a.status, 9), -(a.started_at or 0)),
        column="status",
    ),
    SortKey("CPU", lambda a, n: (a.cpu_percent or 0.0,), reverse=True, column="cpu"),
    SortKey("memory", lambda a, n: (a.rss_bytes or 0,), reverse=True, column="mem"),
    SortKey("uptime", lambda a, n: (uptime(a, n) or 0.0,), reverse=True, column="uptime"),
    SortKey("type", lambda a, n: (a.agent_type, a.task_id or ""), column="type"),
    SortKey("task", lambda a, n: (a.task_id or "", a.agent_type), column="task"),
    SortKey("respawns", lambda a, n: (a.respawns,), reverse=True, column="respawns"),
    SortKey("cost", lambda a, n: (a.cost_usd or 0.0,), reverse=True, column="cost"),
    SortKey("PID", lambda a, n: (a.pid,), column="pid"),
]
SORT_COLUMNS = {sort.label: sort.column for sort in SORTS}
ASCENDING, DESCENDING = "▲", "▼"


@dataclass(frozen=True)
class ViewSpec:
    """What the operator chose to see: the sort, its direction and the filter."""

    sort_index: int = 0
    reversed: bool = False
    filter: str = ""

    @property
    def sort(self) -> SortKey:
        return SORTS[self.sort_index]

    @property
    def descending(self) -> bool:
        return self.sort.reverse != self.reversed

    @property
    def arrow(self) -> str:
        return DESCENDING if self.descending else ASCENDING


@dataclass(frozen=True, eq=False)
class AgentRow:
    """One agent as the table draws it: cleaned cell texts (never markup) and widths."""

    key: str
    agent: AgentView
    cells: tuple[str, ...]
    widths: tuple[int, ...]
    haystack: str


@dataclass(frozen=True, eq=False)
class AgentsFrame:
    """Every row of one snapshot, and the keys the view shows in order."""

    rows: dict[str, AgentRow]
    order: tuple[str, ...]
    spec: ViewSpec
    naturals: tuple[int, ...]
    """Widest cell of each column (without the header)."""
    has_cost: bool
    now: float
    index: dict[str, int] = field(default_factory=dict)
    """Position of each shown key in ``order``."""


def _index(order: Sequence[str]) -> dict[str, int]:
    return {key: n for n, key in enumerate(order)}


def arrange(rows: dict[str, AgentRow], spec: ViewSpec, now: float) -> tuple[str, ...]:
    """The keys ``spec`` shows, filtered and sorted (ties by key, so a reversed sort
    is exactly the other way round and refreshes never shuffle equal rows)."""
    needle = spec.filter.lower()
    shown = [row for row in rows.values() if not needle or needle in row.haystack]
    order = spec.sort.key
    shown.sort(key=lambda row: (order(row.agent, now), row.key), reverse=spec.descending)
    return tuple(row.key for row in shown)


def reframe(frame: AgentsFrame, spec: ViewSpec) -> AgentsFrame:
    """The same rows under another view (a new sort or filter)."""
    order = arrange(frame.rows, spec, frame.now)
    return AgentsFrame(
        frame.rows, order, spec, frame.naturals, frame.has_cost, frame.now, _index(order)
    )


class AgentsModel:
    """Builds frames in the snapshot worker; keeps rows whose shown text is unchanged.

    ``spec`` is set by the UI thread (one reference assignment) and read by the
    worker; ``prepare`` runs in one worker at a time (refreshes never overlap), and
    the lock makes a stray second caller safe.
    """

    def __init__(self) -> None:
        self.spec = ViewSpec()
        self._rows: dict[str, tuple[object, AgentRow]] = {}
        self._lock = threading.Lock()

    def prepare(self, agents: Sequence[AgentView], now: float) -> AgentsFrame:
        with self._lock:
            spec = self.spec
            cache = self._rows
            fresh: dict[str, tuple[object, AgentRow]] = {}
            rows: dict[str, AgentRow] = {}
            for agent in agents:
                signature = shown_signature(agent, now)
                cached = cache.get(agent.key)
                if cached is not None and cached[0] == signature:
                    row = cached[1]
                    if row.agent is not agent:  # same text, newer record (detail, actions)
                        row = AgentRow(row.key, agent, row.cells, row.widths, row.haystack)
                else:
                    row = self._build(agent, now)
                fresh[agent.key] = (signature, row)
                rows[agent.key] = row
            self._rows = fresh  # bounded by the agents listed now
            naturals = tuple(
                max((row.widths[i] for row in rows.values()), default=0) for i in range(len(KEYS))
            )
            has_cost = any(row.agent.cost_usd is not None for row in rows.values())
            order = arrange(rows, spec, now)
            return AgentsFrame(rows, order, spec, naturals, has_cost, now, _index(order))

    def _build(self, agent: AgentView, now: float) -> AgentRow:
        up = uptime(agent, now)
        # Why it is not running (e.g. its respawn could not start) beats its last line.
        last = text.log_message(text.clean(agent.reason or agent.last_log_line or ""))
        cells = (
            text.agent_pid(agent),
            text.one_line(text.clean(agent.agent_type), 40),
            text.one_line(text.clean(agent.task_id or "-"), 40),
            text.clean(status_label(agent, now)),
            text.duration(up) if up is not None else "-",
            text.percent(agent.cpu_percent),
            text.size(agent.rss_bytes or None),
            f"{agent.respawns}/{agent.max_respawns}",
            cost_label(agent),
            text.one_line(last, 200),
        )
        return AgentRow(
            agent.key,
            agent,
            cells,
            tuple(cell_len(cell) for cell in cells),
            haystack(agent, now),
        )
