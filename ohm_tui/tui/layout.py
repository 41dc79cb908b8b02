"""The panels share the screen's height by content.

Fixed fractions left the bug list a dozen empty rows while the crash timeline,
mid crash storm, showed six. Instead each panel asks for what its rows need; a
panel that asks for less than an even share gets it, and the rest is shared by
the panels that want more (water-filling). Room nobody asks for is shared evenly.
"""

from __future__ import annotations

from collections.abc import Sequence

from textual import events
from textual.containers import Vertical
from textual.widget import Widget
from textual.widgets import DataTable

from ohm_tui.tui.agents_table import AgentsTable

MIN_PANEL = 4
"""Lines a panel keeps however little it holds (``min-height`` in styles.tcss)."""


def share(available: int, wants: Sequence[int], minimum: int = MIN_PANEL) -> list[int]:
    """Heights that sum to ``available``: small wants in full, the rest split evenly."""
    count = len(wants)
    if count == 0:
        return []
    wants = [max(want, minimum) for want in wants]
    if available < minimum * count:  # too small for anything clever
        return _even(available, count)
    if sum(wants) <= available:
        extra = _even(available - sum(wants), count)
        return [want + more for want, more in zip(wants, extra, strict=True)]
    heights = [0] * count
    remaining = available
    open_ = list(range(count))
    while open_:
        fair = remaining // len(open_)
        fits = [i for i in open_ if wants[i] <= fair]
        if not fits:
            for i, height in zip(open_, _even(remaining, len(open_)), strict=True):
                heights[i] = height
            break
        for i in fits:
            heights[i] = wants[i]
            remaining -= wants[i]
            open_.remove(i)
    return heights


def _even(total: int, count: int) -> list[int]:
    base, rest = divmod(max(0, total), count)
    return [base + (1 if i < rest else 0) for i in range(count)]


def wanted_height(panel: Widget) -> int:
    """Lines ``panel`` needs to show every row: its border, its other children, the table."""
    table = next(c for c in panel.children if isinstance(c, (DataTable, AgentsTable)))
    chrome = panel.styles.gutter.height
    for child in panel.children:
        if child is not table and child.display:
            chrome += child.outer_size.height
    header = table.header_height if table.show_header else 0
    return chrome + header + table.row_count


class Panes(Vertical):
    """The agents panel over ``#lower`` (crash timeline and bugs, stacked or side by side)."""

    def on_resize(self, event: events.Resize) -> None:
        self.fit()

    def fit(self) -> None:
        """Give each panel the height its content wants, within what the screen has."""
        available = self.size.height
        if available <= 0:
            return
        agents = self.query_one("#agents")
        lower = self.query_one("#lower")
        timeline = self.query_one("#timeline")
        bugs = self.query_one("#bugs")
        side_by_side = lower.styles.layout is not None and lower.styles.layout.name == "horizontal"
        if side_by_side:
            lower_want = max(wanted_height(timeline), wanted_height(bugs))
            top, bottom = share(available, [wanted_height(agents), lower_want])
            heights = {agents: top, lower: bottom, timeline: bottom, bugs: bottom}
        else:
            top, middle, bottom = share(
                available, [wanted_height(agents), wanted_height(timeline), wanted_height(bugs)]
            )
            heights = {agents: top, lower: middle + bottom, timeline: middle, bugs: bottom}
        for widget, height in heights.items():
            if widget.styles.height is None or widget.styles.height.cells != height:
                widget.styles.height = height
