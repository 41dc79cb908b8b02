"""The live agents panel: the agents table (sortable, filterable) and its filter input.

Rows, cells and the order are built in the snapshot worker (``agents_model``);
the panel applies a frame, and on ``s`` / ``S`` / ``/`` re-arranges the rows it
already has (their sort keys and filter text were built by the worker).
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Input

from ohm_tui.engine.model import AgentView
from ohm_tui.tui import text
from ohm_tui.tui.agents_model import (
    ASCENDING,
    COLUMNS,
    DESCENDING,
    LIVE_STATUSES,
    SORT_COLUMNS,
    SORTS,
    STATUS_RANK,
    AgentsFrame,
    AgentsModel,
    SortKey,
    ViewSpec,
    cost_label,
    matches,
    reframe,
    shown_signature,
    status_label,
    uptime,
)
from ohm_tui.tui.agents_table import AgentsTable

__all__ = [
    "ASCENDING",
    "COLUMNS",
    "DESCENDING",
    "LIVE_STATUSES",
    "SORTS",
    "SORT_COLUMNS",
    "STATUS_RANK",
    "AgentsPanel",
    "SortKey",
    "cost_label",
    "matches",
    "shown_signature",
    "status_label",
    "uptime",
]


class AgentsPanel(Vertical):
    """Agents table plus its (normally hidden) filter input."""

    def __init__(self, model: AgentsModel | None = None, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.model = model or AgentsModel()
        """Shared with the snapshot worker, which builds frames with it."""
        self.frame: AgentsFrame | None = None

    def compose(self) -> ComposeResult:
        yield AgentsTable(id="agents-table")
        # Compact: one line that shows what is typed. A bordered Input needs three
        # lines, and squeezed into one it draws only its borders.
        yield Input(
            placeholder="filter by type, task or status (enter: keep, esc: clear)",
            id="agents-filter",
            compact=True,
        )

    def on_mount(self) -> None:
        self.query_one("#agents-filter", Input).display = False
        self._update_title()

    @property
    def table(self) -> AgentsTable:
        return self.query_one("#agents-table", AgentsTable)

    @property
    def agents(self) -> dict[str, AgentView]:
        """Every agent of the last frame, shown or filtered out, by key."""
        if self.frame is None:
            return {}
        return {key: row.agent for key, row in self.frame.rows.items()}

    def agent(self, key: str) -> AgentView | None:
        row = self.frame.rows.get(key) if self.frame is not None else None
        return None if row is None else row.agent

    @property
    def selected(self) -> AgentView | None:
        key = self.table.cursor_key
        return None if key is None else self.agent(key)

    @property
    def spec(self) -> ViewSpec:
        return self.model.spec

    @property
    def filter_text(self) -> str:
        return self.spec.filter

    @property
    def sort_index(self) -> int:
        return self.spec.sort_index

    @property
    def sort_reversed(self) -> bool:
        """The operator reversed the current sort (``S``)."""
        return self.spec.reversed

    @property
    def sort(self) -> SortKey:
        return self.spec.sort

    def show_agents(self, agents: list[AgentView], now: float) -> None:
        """Build a frame here, on the UI thread (the worker normally does it), and show it."""
        self.show_frame(self.model.prepare(agents, now))

    def show_frame(self, frame: AgentsFrame) -> None:
        """Apply a frame the worker built; re-arranged here only if the operator changed
        the sort or the filter while it was being built."""
        if frame.spec != self.spec:
            frame = reframe(frame, self.spec)
        self.frame = frame
        self.table.show(frame)
        self._update_title()

    @property
    def filter_active(self) -> bool:
        """A filter is set or its input is open (so escape has something to clear)."""
        return bool(self.filter_text) or bool(self.query_one("#agents-filter", Input).display)

    @property
    def sort_arrow(self) -> str:
        """▲ ascending or ▼ descending, as the table is sorted now."""
        return self.spec.arrow

    @property
    def sort_label(self) -> str:
        """``"CPU ▼"``: the order and its direction."""
        if self.sort_reversed and self.sort.label == "problems first":
            return f"problems last {self.sort_arrow}"
        return f"{self.sort.label} {self.sort_arrow}"

    def cycle_sort(self) -> str:
        """The next sort order, in its natural direction; returns its label."""
        spec = self.spec
        self._view(ViewSpec((spec.sort_index + 1) % len(SORTS), False, spec.filter))
        return self.sort_label

    def reverse_sort(self) -> str:
        """The same order, the other way round; returns its label."""
        spec = self.spec
        self._view(ViewSpec(spec.sort_index, not spec.reversed, spec.filter))
        return self.sort_label

    def open_filter(self) -> None:
        field = self.query_one("#agents-filter", Input)
        field.display = True
        field.value = self.filter_text
        field.focus()

    def set_filter(self, value: str) -> None:
        spec = self.spec
        self._view(ViewSpec(spec.sort_index, spec.reversed, value.strip()))

    def close_filter(self, *, clear: bool) -> None:
        field = self.query_one("#agents-filter", Input)
        if clear:
            field.value = ""
            self.set_filter("")
        field.display = bool(self.filter_text)
        self.table.focus()

    def on_agents_table_problems_above(self, event: AgentsTable.ProblemsAbove) -> None:
        self._update_title()

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self.set_filter(event.value)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.close_filter(clear=False)

    def _view(self, spec: ViewSpec) -> None:
        """The operator's new sort or filter: the next frames are built for it, and the
        rows on screen are re-arranged now."""
        if spec == self.spec:
            return
        self.model.spec = spec
        if self.frame is not None:
            self.show_frame(self.frame)
        else:
            self._update_title()

    def _update_title(self) -> None:
        frame = self.frame
        total = len(frame.rows) if frame is not None else 0
        shown = len(frame.order) if frame is not None else 0
        count = f"{total}" if shown == total else f"{shown} of {total}"
        title = f"1 Agents ({count}) · sort: {self.sort_label}"
        above = self.table.problems_above if self.is_mounted else 0
        if above:  # never hide a crash: scrolled off the top, it is still named
            title = f"1 Agents ({count}) · ▲ {above} problem{'s' if above > 1 else ''} above"
            title += f" · sort: {self.sort_label}"
        if self.filter_text:
            title += f" · filter: {text.one_line(text.clean(self.filter_text), 30)}"
        # One title line, not a subtitle: at 24 lines panels have no bottom border.
        text.set_border_title(self, title)
