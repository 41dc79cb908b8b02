"""The bug list: one keyed row per bug, priority coloured from the theme (and written out)."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical

from ohm_tui.engine.model import PRIORITY_RANK, BugRow
from ohm_tui.tui import text
from ohm_tui.tui.keyed_table import CellCache, KeyedTable
from ohm_tui.tui.tones import PRIORITY_TONES, tone

COLUMNS: list[tuple[str, str]] = [
    ("Bug", "bug"),
    ("Priority", "priority"),
    ("Title", "title"),
    ("Seen", "occurrences"),
    ("Status", "status"),
    ("Assigned", "assigned"),
    ("Last seen", "last_seen"),
]
# Text columns that narrow (to this width at least) so the table fits its panel.
CUTTABLE = {"title": 12, "assigned": 8}


class BugsPanel(Vertical):
    """Bugs, open ones first, then by priority and recency. Rows are keyed by bug number."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.bugs: dict[str, BugRow] = {}
        self._cell_cache = CellCache()

    def compose(self) -> ComposeResult:
        yield KeyedTable(COLUMNS, cuttable=CUTTABLE, id="bugs-table")

    def on_mount(self) -> None:
        self.border_title = Text("3 Bugs")

    @property
    def table(self) -> KeyedTable:
        return self.query_one("#bugs-table", KeyedTable)

    @property
    def selected(self) -> BugRow | None:
        key = self.table.cursor_key
        return None if key is None else self.bugs.get(key)

    def show_bugs(self, bugs: list[BugRow], open_count: int, now: float) -> None:
        ordered = sorted(
            bugs,
            key=lambda b: (
                b.status in ("closed", "resolved"),
                PRIORITY_RANK.get(b.priority, 9),
                -(b.last_seen or b.updated_at or b.created_at or 0.0),
                -b.bug_number,
            ),
        )
        self.bugs = {str(b.bug_number): b for b in ordered}
        self._cell_cache.keep_only(self.bugs)
        self.table.sync([(str(b.bug_number), self._cached_cells(b, now)) for b in ordered])
        text.set_border_title(self, f"3 Bugs ({open_count} open)")

    def _cached_cells(self, bug: BugRow, now: float) -> list[Text]:
        last = bug.last_seen or bug.updated_at or bug.created_at
        signature = (bug, text.ago(last, now))
        return self._cell_cache.get(str(bug.bug_number), signature, lambda: self._cells(bug, now))

    def _cells(self, bug: BugRow, now: float) -> list[Text]:
        style = tone(self.app, PRIORITY_TONES.get(bug.priority, ""), bold=True)
        last = bug.last_seen or bug.updated_at or bug.created_at
        return [
            Text(bug.label),
            text.literal(bug.priority, style, max_len=10),
            text.literal(bug.title, max_len=48),
            Text(str(bug.occurrences), justify="right"),
            text.literal(bug.status, max_len=12),
            text.literal(bug.assigned_to or "-", max_len=18),
            Text(text.ago(last, now)),
        ]
