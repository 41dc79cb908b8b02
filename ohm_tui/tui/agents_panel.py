"""The live agents table: one keyed row per agent run, sortable and filterable."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Input

from ohm_tui.engine import timeutil
from ohm_tui.engine.model import LIVE, AgentView, Lifecycle
from ohm_tui.engine.sources.invocations import format_usd
from ohm_tui.tui import text
from ohm_tui.tui.keyed_table import CellCache, KeyedTable
from ohm_tui.tui.tones import STATUS_TONES, tone

COLUMNS: list[tuple[str, str]] = [
    ("PID", "pid"),
    ("Type", "type"),
    ("Task", "task"),
    ("Status", "status"),
    ("Uptime", "uptime"),
    ("CPU", "cpu"),
    ("Memory", "mem"),
    ("Resp", "respawns"),
    ("Cost", "cost"),  # the task's spend, last 24 h (session agents; "-" when unknown)
    ("Last log line", "last"),
]

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
# Text columns that narrow (to this width at least) so numbers and units are never cut.
# Cut in this order (least dear first): past every floor, the type goes to a few
# letters before the task does.
CUTTABLE = {"last": 5, "type": 8, "task": 7}


def status_label(agent: AgentView, now: float) -> str:
    """The status as people read it: ``respawning in 4s``, ``given up`` (as the CLI shows it)."""
    return text.agent_status(agent, now)


def shown_signature(agent: AgentView, now: float) -> tuple[object, ...]:
    """What a row shows, cheaply: equal signatures draw the same row.

    Raw CPU and memory jitter every sample while the shown "13.8 MiB" and "0.0%"
    do not, so the signature holds the shown texts (from cached formatters), not
    the raw numbers; building nine Rich cells for a thousand rows was most of a frame.
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


def cost_label(agent: AgentView) -> str:
    """The agent's task spend (``$0.75``), ``-`` when no invocation names it."""
    return "-" if agent.cost_usd is None else format_usd(agent.cost_usd)


def uptime(agent: AgentView, now: float) -> float | None:
    return text.agent_uptime(agent, now)


@dataclass(frozen=True)
class SortKey:
    label: str
    key: Callable[[AgentView, float], tuple[object, ...]]
    reverse: bool = False


SORTS: list[SortKey] = [
    SortKey("problems first", lambda a, n: (STATUS_RANK.get(a.status, 9), -(a.started_at or 0))),
    SortKey("CPU", lambda a, n: (a.cpu_percent or 0.0,), reverse=True),
    SortKey("memory", lambda a, n: (a.rss_bytes or 0,), reverse=True),
    SortKey("uptime", lambda a, n: (uptime(a, n) or 0.0,), reverse=True),
    SortKey("type", lambda a, n: (a.agent_type, a.task_id or "")),
    SortKey("task", lambda a, n: (a.task_id or "", a.agent_type)),
    SortKey("respawns", lambda a, n: (a.respawns,), reverse=True),
    SortKey("cost", lambda a, n: (a.cost_usd or 0.0,), reverse=True),
    SortKey("PID", lambda a, n: (a.pid,)),
]
# The column whose label carries a sort's direction arrow.
SORT_COLUMNS = {
    "problems first": "status",
    "CPU": "cpu",
    "memory": "mem",
    "uptime": "uptime",
    "type": "type",
    "task": "task",
    "respawns": "respawns",
    "cost": "cost",
    "PID": "pid",
}
ASCENDING, DESCENDING = "▲", "▼"


def matches(agent: AgentView, needle: str, now: float) -> bool:
    """The filter: a case-insensitive substring of type, task or status."""
    if not needle:
        return True
    needle = needle.lower()
    fields = (agent.agent_type, agent.task_id or "", status_label(agent, now), agent.status)
    return any(needle in text.clean(value).lower() for value in fields)


class AgentsPanel(Vertical):
    """Agents table plus its (normally hidden) filter input."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.agents: dict[str, AgentView] = {}
        self.filter_text = ""
        self.sort_index = 0
        self.sort_reversed = False
        """The operator reversed the current sort (``S``)."""
        self._now = timeutil.now()
        self._cell_cache = CellCache()

    def compose(self) -> ComposeResult:
        yield KeyedTable(COLUMNS, cuttable=CUTTABLE, id="agents-table")
        # Compact: one line that shows what is typed. A bordered Input needs three
        # lines, and squeezed into one it draws only its borders.
        yield Input(
            placeholder="filter by type, task or status (enter: keep, esc: clear)",
            id="agents-filter",
            compact=True,
        )

    def on_mount(self) -> None:
        self.query_one("#agents-filter", Input).display = False
        self._show_sort_arrow()
        self._update_title()

    @property
    def table(self) -> KeyedTable:
        return self.query_one("#agents-table", KeyedTable)

    @property
    def selected(self) -> AgentView | None:
        key = self.table.cursor_key
        return None if key is None else self.agents.get(key)

    @property
    def sort(self) -> SortKey:
        return SORTS[self.sort_index]

    def show_agents(self, agents: list[AgentView], now: float) -> None:
        """Render a snapshot's agents (filtered and sorted) by diff."""
        self._now = now
        self.agents = {agent.key: agent for agent in agents}
        self._sync()

    @property
    def filter_active(self) -> bool:
        """A filter is set or its input is open (so escape has something to clear)."""
        return bool(self.filter_text) or bool(self.query_one("#agents-filter", Input).display)

    @property
    def sort_arrow(self) -> str:
        """▲ ascending or ▼ descending, as the table is sorted now."""
        return DESCENDING if self.sort.reverse != self.sort_reversed else ASCENDING

    @property
    def sort_label(self) -> str:
        """``"CPU ▼"``: the order and its direction."""
        if self.sort_reversed and self.sort.label == "problems first":
            return f"problems last {self.sort_arrow}"
        return f"{self.sort.label} {self.sort_arrow}"

    def cycle_sort(self) -> str:
        """The next sort order, in its natural direction; returns its label."""
        self.sort_index = (self.sort_index + 1) % len(SORTS)
        self.sort_reversed = False
        self._sync()
        return self.sort_label

    def reverse_sort(self) -> str:
        """The same order, the other way round; returns its label."""
        self.sort_reversed = not self.sort_reversed
        self._sync()
        return self.sort_label

    def open_filter(self) -> None:
        field = self.query_one("#agents-filter", Input)
        field.display = True
        field.value = self.filter_text
        field.focus()

    def set_filter(self, value: str) -> None:
        self.filter_text = value.strip()
        self._sync()

    def close_filter(self, *, clear: bool) -> None:
        field = self.query_one("#agents-filter", Input)
        if clear:
            field.value = ""
            self.set_filter("")
        field.display = bool(self.filter_text)
        self.table.focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self.set_filter(event.value)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.close_filter(clear=False)

    def _sync(self) -> None:
        now = self._now
        self._cell_cache.keep_only(self.agents)
        shown = [a for a in self.agents.values() if matches(a, self.filter_text, now)]
        order = self.sort
        shown.sort(key=lambda a: order.key(a, now), reverse=order.reverse != self.sort_reversed)
        self.table.sync([(a.key, self._cells(a, now)) for a in shown])
        self._show_sort_arrow()
        self._update_title(len(shown))

    def _update_title(self, shown: int | None = None) -> None:
        total = len(self.agents)
        count = f"{total}" if shown is None or shown == total else f"{shown} of {total}"
        title = f"1 Agents ({count}) · sort: {self.sort_label}"
        if self.filter_text:
            title += f" · filter: {text.one_line(text.clean(self.filter_text), 30)}"
        # One title line, not a subtitle: at 24 lines panels have no bottom border.
        text.set_border_title(self, title)

    def _show_sort_arrow(self) -> None:
        """The sorted column's label carries ▲ or ▼; the others carry none."""
        for label, key in COLUMNS:
            sorted_by = SORT_COLUMNS.get(self.sort.label)
            shown = f"{label} {self.sort_arrow}" if key == sorted_by else label
            self.table.set_column_label(key, shown)

    def _cells(self, agent: AgentView, now: float) -> list[Text]:
        """A row's cells, reused while nothing shown in it changed: building and
        sanitizing nine Texts for a thousand rows every frame is most of a frame."""
        return self._cell_cache.get(
            agent.key, shown_signature(agent, now), lambda: self._build_cells(agent, now)
        )

    def _build_cells(self, agent: AgentView, now: float) -> list[Text]:
        status_style = tone(self.app, STATUS_TONES.get(agent.status, ""), bold=True)
        return [
            Text(text.agent_pid(agent)),
            text.literal(agent.agent_type, max_len=18),
            text.literal(agent.task_id or "-", max_len=18),
            Text(status_label(agent, now), style=status_style),
            Text(text.duration(uptime(agent, now)) if uptime(agent, now) is not None else "-"),
            Text(text.percent(agent.cpu_percent), justify="right"),
            Text(text.size(agent.rss_bytes or None), justify="right"),
            Text(f"{agent.respawns}/{agent.max_respawns}"),
            Text(cost_label(agent), justify="right"),
            # Why it is not running (e.g. its respawn could not start) beats its last line.
            text.literal(
                text.log_message(text.clean(agent.reason or agent.last_log_line or "")), max_len=60
            ),
        ]
