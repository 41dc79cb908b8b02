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
from ohm_tui.engine.model import LIVE, AgentView, Lifecycle
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
UPTIME = KEYS.index("uptime")

# Problems first in the default order, so a crash is never below the fold.
STATUS_RANK: dict[str, int] = {
    Lifecycle.CRASHED: 0,
    Lifecycle.GIVEN_UP: 1,
    Lifecycle.RESPAWN_FAILED: 1,
    Lifecycle.RESPAWNING: 2,
    Lifecycle.ZOMBIE: 3,
    Lifecycle.STALLED: 4,
    Lifecycle.STALE: 5,
    Lifecycle.RUNNING: 6,
    Lifecycle.COMPLETED: 7,
    Lifecycle.KILLED: 8,
}
LIVE_STATUSES = LIVE
PROBLEMS: frozenset[str] = frozenset(
    {
        Lifecycle.CRASHED,
        Lifecycle.GIVEN_UP,
        Lifecycle.RESPAWN_FAILED,
        Lifecycle.ZOMBIE,
        Lifecycle.STALLED,
    }
)
"""Statuses an operator must see: the table's title counts those scrolled above the view."""


def status_label(agent: AgentView, now: float) -> str:
    """The status as people read it: ``respawning in 4s``, ``given up`` (as the CLI shows it)."""
    return text.agent_status(agent, now)


def uptime(agent: AgentView, now: float) -> float | None:
    return text.agent_uptime(agent, now)


def cost_label(agent: AgentView) -> str:
    """The agent's task spend (``$0.75``), ``-`` when no invocation names it."""
    return "-" if agent.cost_usd is None else format_usd(agent.cost_usd)


def shown_signature(agent: AgentView, now: float) -> tuple[tuple[object, ...], str]:
    """What a row shows, cheaply: equal signatures draw the same row.

    Raw CPU and memory jitter every sample while the shown "13.8 MiB" and "0.0%"
    do not, so the signature holds the shown texts (from cached formatters), not
    the raw numbers. The uptime is apart: it is what changes most (every second for
    young agents), and a row whose uptime alone changed gets only that cell anew.
    """
    status = agent.status
    live = status in LIVE_STATUSES
    countdown = (
        round(agent.next_respawn_at - now)
        if status == Lifecycle.RESPAWNING and agent.next_respawn_at is not None
        else None
    )  # what status_label shows, from its inputs: "respawning in 4s", "crashed (exit 1)"
    rest = (
        agent.pid,
        agent.source == "session",
        agent.agent_type,
        agent.task_id,
        status,
        None if live else agent.exit_code,
        countdown,
        text.percent(agent.cpu_percent),
        text.size(agent.rss_bytes),
        agent.respawns,
        agent.max_respawns,
        agent.cost_usd,
        agent.reason or agent.last_log_line,
    )
    return rest, text.duration(uptime(agent, now))


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
    live: bool = False
    """The key moves while the row's text does not (raw CPU, memory, the clock):
    computed at each sort; the others are computed once per row and kept with it."""


SORTS: list[SortKey] = [
    SortKey(
        "problems first",
        lambda a, n: (STATUS_RANK.get(a.status, 9), -(a.started_at or 0)),
        column="status",
    ),
    SortKey("CPU", lambda a, n: (a.cpu_percent or 0.0,), reverse=True, column="cpu", live=True),
    SortKey("memory", lambda a, n: (a.rss_bytes or 0,), reverse=True, column="mem", live=True),
    SortKey(
        "uptime", lambda a, n: (uptime(a, n) or 0.0,), reverse=True, column="uptime", live=True
    ),
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


@dataclass(eq=False, slots=True)
class AgentRow:
    """One agent as the table draws it: cleaned cell texts (never markup) and widths,
    its filter text and its sort keys, built once while what it shows is unchanged.

    ``agent`` is the newest record (the worker swaps it in; a reader on the UI thread
    gets the one before or after, both drawing this same text).
    """

    key: str
    agent: AgentView
    cells: tuple[str, ...]
    widths: tuple[int, ...]
    haystack: str
    keys: tuple[tuple[object, ...] | None, ...]
    """Each sort's key (``None`` for a live one, computed when sorting)."""


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
    index = spec.sort_index
    if SORTS[index].live:
        key = SORTS[index].key
        shown.sort(key=lambda row: (key(row.agent, now), row.key), reverse=spec.descending)
    else:
        shown.sort(key=lambda row: (row.keys[index], row.key), reverse=spec.descending)
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
        self._rows: dict[str, tuple[tuple[tuple[object, ...], str], AgentRow]] = {}
        self._last: AgentsFrame | None = None
        self._lock = threading.Lock()

    def prepare(self, agents: Sequence[AgentView], now: float) -> AgentsFrame:
        """A frame for ``agents``. An idle fleet costs one signature per row: rows,
        column widths and (for a sort on what rows show) the order are reused."""
        with self._lock:
            spec = self.spec
            cache = self._rows
            fresh: dict[str, tuple[tuple[tuple[object, ...], str], AgentRow]] = {}
            rows: dict[str, AgentRow] = {}
            changed = False  # a row built anew, or one gone: widths and order again
            aged = False  # only uptimes changed: that column's width again
            for agent in agents:
                signature = shown_signature(agent, now)
                cached = cache.get(agent.key)
                if cached is None or cached[0][0] != signature[0]:
                    row = self._build(agent, now)
                    changed = True
                elif cached[0][1] != signature[1]:
                    row = _aged(cached[1], agent, signature[1])
                    aged = True
                else:
                    row = cached[1]
                    row.agent = agent  # same text, newer record (detail, actions)
                fresh[agent.key] = (signature, row)
                rows[agent.key] = row
            changed = changed or len(fresh) != len(cache)
            self._rows = fresh  # bounded by the agents listed now
            last = self._last
            if last is None or changed:
                naturals = tuple(_widest(rows, i) for i in range(len(KEYS)))
                has_cost = any(row.agent.cost_usd is not None for row in rows.values())
            else:
                naturals, has_cost = last.naturals, last.has_cost
                if aged:
                    naturals = tuple(
                        _widest(rows, i) if i == UPTIME else n for i, n in enumerate(naturals)
                    )
            if last is not None and not changed and last.spec == spec and not spec.sort.live:
                order, index = last.order, last.index
            else:
                order = arrange(rows, spec, now)
                index = _index(order)
            frame = AgentsFrame(rows, order, spec, naturals, has_cost, now, index)
            self._last = frame
            return frame

    def _build(self, agent: AgentView, now: float) -> AgentRow:
        up = uptime(agent, now)
        # Why it is not running (e.g. its respawn could not start) beats its last line.
        last = text.log_message(text.clean(agent.reason or agent.last_log_line or ""))
        cells = (
            text.agent_pid(agent),
            text.one_line(text.clean(agent.agent_type), 40),
            text.one_line(text.clean(agent.task_id or "-"), 40),
            text.clean(status_label(agent, now)),
            text.duration(up),
            text.percent(agent.cpu_percent),
            text.size(agent.rss_bytes or None),
            "-" if agent.source == "session" else f"{agent.respawns}/{agent.max_respawns}",
            cost_label(agent),
            text.one_line(last, 200),
        )
        return AgentRow(
            agent.key,
            agent,
            cells,
            tuple(cell_len(cell) for cell in cells),
            haystack(agent, now),
            tuple(None if sort.live else sort.key(agent, now) for sort in SORTS),
        )


def _aged(row: AgentRow, agent: AgentView, shown_uptime: str) -> AgentRow:
    """``row`` with only its uptime anew (its sort keys do not depend on it)."""
    cells = (*row.cells[:UPTIME], shown_uptime, *row.cells[UPTIME + 1 :])
    widths = (*row.widths[:UPTIME], cell_len(shown_uptime), *row.widths[UPTIME + 1 :])
    return AgentRow(row.key, agent, cells, widths, row.haystack, row.keys)


def _widest(rows: dict[str, AgentRow], column: int) -> int:
    return max((row.widths[column] for row in rows.values()), default=0)
