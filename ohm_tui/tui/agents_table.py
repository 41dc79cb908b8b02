"""The agents table as a line-API widget: it draws only the rows in view.

A ``DataTable`` holds every row as widgets' data and measures, sorts and caches
all of them on the UI thread; at 5,000 agents a refresh or a re-sort took the UI
thread for a good part of a second. ``AgentsTable`` holds an
:class:`~ohm_tui.tui.agents_model.AgentsFrame` built in the snapshot worker and
draws the few lines on screen from it (``render_line``). Applying a new frame
keeps the cursor on the same agent (by key); a view at the top stays at the top
(a new crash sorted first is seen at once), a view scrolled down keeps the cursor's agent
on its screen line; problem rows above the view are counted for the title
(:attr:`AgentsTable.problems_above`). Only the lines whose text changed are
repainted, so an idle console writes almost nothing to the terminal.

Cells are plain strings already cleaned of escapes (``text.clean``) and drawn as
``Segment`` text, which is never parsed as markup.
"""

from __future__ import annotations

from typing import ClassVar

from rich.cells import cell_len
from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding, BindingType
from textual.geometry import Region, Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from ohm_tui.cli.table import Column, layout, pad, truncate
from ohm_tui.tui.agents_model import (
    COLUMNS,
    KEYS,
    LAYOUT,
    PROBLEMS,
    RIGHT,
    AgentRow,
    AgentsFrame,
    ViewSpec,
)
from ohm_tui.tui.tones import STATUS_TONES, tone

GAP = "  "
STATUS = KEYS.index("status")


class AgentsTable(ScrollView, can_focus=True):
    """Rows of one :class:`AgentsFrame`, drawn from the frame as they scroll into view."""

    BINDINGS: ClassVar[list[BindingType]] = [
        # Shown: the footer lists the focused widget's keys first, so the screen's
        # "enter Details" would never be drawn at all.
        Binding("enter", "select_cursor", "Details", tooltip="Open the selected row"),
        Binding("up", "cursor_up", "Cursor up", show=False),
        Binding("down", "cursor_down", "Cursor down", show=False),
        Binding("pageup", "page_up", "Page up", show=False),
        Binding("pagedown", "page_down", "Page down", show=False),
        # Never sideways: the cursor moves, so a following ``r`` acts on the row shown.
        Binding("home,g", "scroll_top", "First row", show=False, tooltip="Go to the first row"),
        Binding("end,G", "scroll_bottom", "Last row", show=False, tooltip="Go to the last row"),
    ]
    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "agents-table--header",
        "agents-table--cursor",
        "agents-table--even-row",
    }
    DEFAULT_CSS = """
    AgentsTable {
        background: $surface;
        color: $foreground;
        overflow-x: hidden;
        &:focus {
            background-tint: $foreground 5%;
            & > .agents-table--cursor {
                background: $block-cursor-background;
                color: $block-cursor-foreground;
                text-style: $block-cursor-text-style;
            }
            & > .agents-table--header {
                background-tint: $foreground 5%;
            }
        }
        &:dark > .agents-table--even-row {
            background: $surface-darken-1 40%;
        }
        & > .agents-table--header {
            text-style: bold;
            background: $panel;
            color: $foreground;
        }
        &:ansi > .agents-table--header {
            background: ansi_bright_blue;
            color: ansi_default;
        }
        & > .agents-table--even-row {
            background: $surface-lighten-1 50%;
        }
        & > .agents-table--cursor {
            background: $block-cursor-blurred-background;
            color: $block-cursor-blurred-foreground;
            text-style: $block-cursor-blurred-text-style;
        }
    }
    """

    class _TableMessage(Message):
        """A message about this table (``control`` is it, as Textual's own widgets do)."""

        def __init__(self, table: AgentsTable) -> None:
            super().__init__()
            self.table = table

        @property
        def control(self) -> AgentsTable:
            return self.table

    class Highlighted(_TableMessage):
        """The cursor is on another agent (or on none)."""

        def __init__(self, table: AgentsTable, key: str | None) -> None:
            super().__init__(table)
            self.key = key

    class Selected(_TableMessage):
        """Enter (or a click on the cursor's row) on an agent."""

        def __init__(self, table: AgentsTable, key: str) -> None:
            super().__init__(table)
            self.key = key

    class ProblemsAbove(_TableMessage):
        """The number of problem rows scrolled above the view changed."""

        def __init__(self, table: AgentsTable, count: int) -> None:
            super().__init__(table)
            self.count = count

    show_header = True
    header_height = 1

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.frame: AgentsFrame | None = None
        self.cursor_row = 0
        self._widths: dict[int, int] = {}
        """Shown columns (index into ``COLUMNS``) and their widths, left to right."""
        self._layout_for: tuple[object, ...] | None = None
        self._tones: dict[tuple[str, str], Style] = {}
        self._problems_above = 0

    # -- what tests and the panel read ------------------------------------------
    @property
    def keys(self) -> list[str]:
        """Row keys in display order."""
        return list(self.frame.order) if self.frame is not None else []

    @property
    def row_count(self) -> int:
        return len(self.frame.order) if self.frame is not None else 0

    @property
    def cursor_key(self) -> str | None:
        """Key of the row under the cursor, or ``None`` when the table is empty."""
        frame = self.frame
        if frame is None or not 0 <= self.cursor_row < len(frame.order):
            return None
        return frame.order[self.cursor_row]

    @property
    def cursor_agent_row(self) -> AgentRow | None:
        key = self.cursor_key
        return None if key is None or self.frame is None else self.frame.rows.get(key)

    @property
    def shown_columns(self) -> list[str]:
        """Keys of the columns drawn now, left to right (narrow screens drop some)."""
        return [KEYS[i] for i in self._widths]

    @property
    def problems_above(self) -> int:
        """Rows with a problem status (crashed, given up, ...) scrolled above the view."""
        return self._problems_above

    def _count_problems_above(self) -> None:
        frame = self.frame
        top = self.scroll_offset.y
        count = 0
        if frame is not None and top > 0:
            rows = frame.rows
            count = sum(1 for key in frame.order[:top] if rows[key].agent.status in PROBLEMS)
        if count != self._problems_above:
            self._problems_above = count
            self.post_message(self.ProblemsAbove(self, count))

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        if round(old_value) != round(new_value):
            self._count_problems_above()

    def cell_text(self, key: str, column: str) -> str:
        """Plain text of one cell, drawn or not (for tests and for prefilling forms)."""
        if self.frame is None or key not in self.frame.rows:
            raise KeyError(key)
        return self.frame.rows[key].cells[KEYS.index(column)]

    def move_to_key(self, key: str) -> bool:
        """Put the cursor on ``key``; ``False`` when there is no such row."""
        if self.frame is None or key not in self.frame.index:
            return False
        self._move_cursor(self.frame.index[key])
        return True

    # -- applying a frame --------------------------------------------------------
    def show(self, frame: AgentsFrame) -> None:
        """Show ``frame``: the cursor stays on its agent. A view at the top stays at
        the top, so rows sorted in above the cursor (a new crash, problems first)
        are seen, not pushed off the top. Scrolled down (or on a new sort or
        filter), the cursor's agent keeps its screen line (or, with the cursor
        scrolled away, the top row stays on top), and the title counts the
        problems above. Only lines whose text changed are drawn again."""
        old = self.frame
        old_key = self.cursor_key
        top = self.scroll_offset.y
        view = self._view_height()
        count = len(frame.order)
        if old_key is not None and old_key in frame.index:
            cursor = frame.index[old_key]
        else:  # its agent went: the cursor keeps its place
            cursor = min(self.cursor_row, max(0, count - 1))
        # At the top after a refresh, stay there: rows sorted in above the cursor (a
        # new crash, problems first) must be seen, not pushed off the top. A new sort
        # or filter keeps the cursor's line, so the next key acts on the row in sight.
        at_top = top == 0 and old is not None and old.spec == frame.spec
        follow_cursor = not at_top and 0 <= self.cursor_row - top < view
        if at_top:
            new_top = 0
        elif follow_cursor:
            new_top = cursor - (self.cursor_row - top)
        elif old is not None and top < len(old.order):
            new_top = frame.index.get(old.order[top], top)
        else:
            new_top = top
        new_top = max(0, min(new_top, count - view)) if count > view else 0
        if follow_cursor:  # still on screen, even where the table got shorter
            new_top = min(max(new_top, cursor - view + 1), cursor)
        before = self._drawn(old, top, view)
        old_widths = dict(self._widths)
        old_cursor = self.cursor_row
        self.frame = frame
        self.cursor_row = cursor
        self._relayout()
        self.virtual_size = Size(0, count + self.header_height)
        if new_top != top:
            self._scroll_to_row(new_top)  # scrolling repaints the whole table
        elif self._widths != old_widths or old is None or old.spec != frame.spec:
            self.refresh()
        else:
            after = self._drawn(frame, new_top, view)
            for line, (was, now) in enumerate(zip(before, after, strict=True)):
                index = new_top + line
                if (index == old_cursor) != (index == cursor):
                    self.refresh_line(self.header_height + index)
                    continue
                span = self._changed_span(was, now)
                if span is not None:  # only the cells that changed: bytes on the wire
                    x, width = span
                    self.refresh(Region(x, self.header_height + line, width, 1))
        if self.cursor_key != old_key:
            self.post_message(self.Highlighted(self, self.cursor_key))
        self._count_problems_above()

    def _drawn(self, frame: AgentsFrame | None, top: int, view: int) -> list[AgentRow | None]:
        if frame is None:
            return [None] * view
        order = frame.order
        return [frame.rows[order[i]] if i < len(order) else None for i in range(top, top + view)]

    def _view_height(self) -> int:
        """Lines for rows: the table's height less its header."""
        return max(1, self.scrollable_content_region.height - self.header_height)

    # -- columns -------------------------------------------------------------------
    def _labels(self, spec: ViewSpec | None) -> list[str]:
        sorted_by = spec.sort.column if spec is not None else None
        return [
            f"{label} {spec.arrow}" if spec is not None and key == sorted_by else label
            for label, key in COLUMNS
        ]

    def _relayout(self) -> None:
        """Which columns fit and how wide: the least important go first (as ``ohm
        agents`` does), then the log line is cut; no column is squeezed to a few letters."""
        frame = self.frame
        width = self.scrollable_content_region.width
        if frame is None or width <= 0:
            return
        labels = self._labels(frame.spec)
        wanted = (width, frame.naturals, frame.has_cost, tuple(labels))
        if wanted == self._layout_for:
            return
        self._layout_for = wanted
        indexes = [i for i, key in enumerate(KEYS) if key != "cost" or frame.has_cost]
        columns = [
            Column(labels[i], LAYOUT[KEYS[i]].priority, LAYOUT[KEYS[i]].min_width,
                   LAYOUT[KEYS[i]].long)
            for i in indexes
        ]  # fmt: skip
        naturals = [max(frame.naturals[i], cell_len(labels[i])) for i in indexes]
        fitted = layout(columns, naturals, width - 2)  # a space at each edge
        self._widths = {indexes[n]: w for n, w in sorted(fitted.items())}

    def on_resize(self, event: events.Resize) -> None:
        self._relayout()
        self.refresh()

    # -- drawing -------------------------------------------------------------------
    def render_line(self, y: int) -> Strip:
        width = self.size.width
        base = self.rich_style
        frame = self.frame
        if y < self.header_height:
            style = base + self.get_component_rich_style("agents-table--header")
            labels = self._labels(frame.spec if frame is not None else None)
            return self._strip(labels, style, width, None)
        index = self.scroll_offset.y + y - self.header_height
        if frame is None or index >= len(frame.order):
            return Strip.blank(width, base)
        row = frame.rows[frame.order[index]]
        style = base
        if index % 2 == 0:
            style += self.get_component_rich_style("agents-table--even-row")
        cursor = (
            self.get_component_rich_style("agents-table--cursor")
            if index == self.cursor_row
            else None
        )
        return self._strip(list(row.cells), style, width, cursor, self._tone(row))

    def _strip(
        self,
        cells: list[str],
        style: Style,
        width: int,
        cursor: Style | None,
        status: Style | None = None,
    ) -> Strip:
        line_style = style + cursor if cursor is not None else style
        segments = [Segment(" ", line_style)]
        for n, (index, column_width) in enumerate(self._widths.items()):
            if n:
                segments.append(Segment(GAP, line_style))
            value = cells[index]
            fitted = truncate(value, column_width) if cell_len(value) > column_width else value
            gap = column_width - cell_len(fitted)
            fitted = " " * gap + fitted if KEYS[index] in RIGHT else pad(fitted, column_width)
            cell_style = line_style
            if index == STATUS and status is not None:
                cell_style = style + status + cursor if cursor is not None else style + status
            segments.append(Segment(fitted, cell_style))
        return Strip(segments).adjust_cell_length(width, line_style).simplify()

    def _tone(self, row: AgentRow) -> Style:
        """The status's theme colour, looked up once per theme."""
        variable = STATUS_TONES.get(row.agent.status, "")
        cache_key = (self.app.theme, variable)
        style = self._tones.get(cache_key)
        if style is None:
            style = self._tones[cache_key] = tone(self.app, variable, bold=True)
        return style

    # -- the cursor ----------------------------------------------------------------
    def _move_cursor(self, row: int) -> None:
        count = self.row_count
        if count == 0:
            return
        row = max(0, min(row, count - 1))
        old = self.cursor_row
        if row == old:
            return
        self.cursor_row = row
        top = self.scroll_offset.y
        view = self._view_height()
        if row < top:
            self._scroll_to_row(row)
        elif row >= top + view:
            self._scroll_to_row(row - view + 1)
        else:
            self.refresh_line(self.header_height + old)
            self.refresh_line(self.header_height + row)
        self.post_message(self.Highlighted(self, self.cursor_key))

    def _scroll_to_row(self, top: int) -> None:
        self.scroll_to(y=top, animate=False, force=True, immediate=True)
        self.refresh()

    def refresh_line(self, y: int) -> None:
        """Repaint one line given in table lines (the header is line 0)."""
        top = self.scroll_offset.y
        if y < self.header_height:
            self.refresh(Region(0, y, self.size.width, 1))
        elif 0 <= y - top < self.size.height:
            self.refresh(Region(0, y - top, self.size.width, 1))

    def action_cursor_up(self) -> None:
        self._move_cursor(self.cursor_row - 1)

    def action_cursor_down(self) -> None:
        self._move_cursor(self.cursor_row + 1)

    def action_page_up(self) -> None:
        self._move_cursor(self.cursor_row - max(1, self._view_height() - 1))

    def action_page_down(self) -> None:
        self._move_cursor(self.cursor_row + max(1, self._view_height() - 1))

    def action_scroll_top(self) -> None:
        self._move_cursor(0)

    def action_scroll_bottom(self) -> None:
        self._move_cursor(self.row_count - 1)

    def action_select_cursor(self) -> None:
        key = self.cursor_key
        if key is not None:
            self.post_message(self.Selected(self, key))

    def on_click(self, event: events.Click) -> None:
        """A click moves the cursor there; a click on the cursor's row opens it."""
        if event.y < self.header_height:
            return
        index = self.scroll_offset.y + event.y - self.header_height
        if index >= self.row_count:
            return
        if index == self.cursor_row:
            self.action_select_cursor()
        else:
            self._move_cursor(index)

    def on_focus(self) -> None:
        self.refresh()

    def on_blur(self) -> None:
        self.refresh()

    def _changed_span(self, a: AgentRow | None, b: AgentRow | None) -> tuple[int, int] | None:
        """Where two rows drawn on the same line differ, as (x, width); ``None`` when
        they draw the same (a young agent's uptime changes every second, but at 80
        columns its column is not drawn, and where it is, only that cell is sent)."""
        if a is None or b is None:
            return None if a is b else (0, self.size.width)
        if a.cells is b.cells:
            return None
        start, end = -1, -1
        x = 1  # the space at the left edge
        for index, width in self._widths.items():
            if a.cells[index] != b.cells[index]:
                start = x if start < 0 else start
                end = x + width
            x += width + len(GAP)
        return None if start < 0 else (start, end - start)
