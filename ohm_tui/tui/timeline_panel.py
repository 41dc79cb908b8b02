"""The crash timeline: a sparkline of crashes per interval over a keyed table that
follows the newest crash (at the bottom, as in ``tail -f``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.coordinate import Coordinate
from textual.reactive import Reactive, var
from textual.widgets import Sparkline, Static

from ohm_tui.cli.table import Column
from ohm_tui.engine.model import CrashRow, Snapshot
from ohm_tui.tui import text
from ohm_tui.tui.keyed_table import CellCache, KeyedTable, Row
from ohm_tui.tui.tones import tone

COLUMNS: list[tuple[str, str]] = [
    ("When", "when"),
    ("Agent", "agent"),
    ("Task", "task"),
    ("Error", "error"),
    ("Action", "action"),
    ("Message", "message"),
]

# How the columns fit (as the agents table and the CLI): at 80 columns the Action
# (often one phrase repeated on every row, and on the detail screen) goes first, so
# the message, what tells crashes apart, keeps the room.
PRIORITIES: dict[str, Column] = {
    "when": Column("When"),
    "agent": Column("Agent", min_width=9),
    "task": Column("Task", priority=1, min_width=8),
    "error": Column("Error", min_width=12),
    "action": Column("Action", priority=2, min_width=14),
    # Its floor is high on purpose: below ~30 cells no message can be told apart.
    "message": Column("Message", min_width=30, long=True),
}


def action_text(crash: CrashRow) -> str:
    """What ohm did about a crash: ``respawned 2/3``, ``gave up``, ``bug BUG-004`` (as the CLI)."""
    return text.clean(text.crash_action(crash))


class CrashTable(KeyedTable):
    """Crashes oldest first, the cursor kept on the newest while ``following``.

    Left alone it follows new crashes as ``tail -f`` does; once the operator moves
    the cursor off the newest row it stays where they put it (new rows arrive below
    it, so nothing they read moves). ``End`` / ``G``, or moving back onto the newest
    row, resumes following; ``Home`` / ``g`` go to the oldest (``KeyedTable``'s).
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "end,G",
            "follow_newest",
            "Newest",
            id="timeline.follow",
            show=False,
            tooltip="Jump to the newest crash and follow new ones",
        ),
    ]

    following: Reactive[bool] = var(True)
    """The cursor stays on the newest crash as crashes arrive."""

    def __init__(self, columns: Sequence[tuple[str, str]], *, id: str | None = None) -> None:
        super().__init__(columns, priorities=PRIORITIES, id=id)
        self._syncing = False

    def sync(self, rows: Sequence[Row]) -> None:
        self._syncing = True  # cursor moves made here are ours, not the operator's
        try:
            super().sync(rows)
            if self.following and self.row_count:
                self.move_cursor(row=self.row_count - 1)
        finally:
            self._syncing = False

    def watch_cursor_coordinate(self, old: Coordinate, new: Coordinate) -> None:
        super().watch_cursor_coordinate(old, new)
        if not self._syncing and self.row_count:
            self.following = new.row == self.row_count - 1

    def action_follow_newest(self) -> None:
        self.following = True
        if self.row_count:
            self.move_cursor(row=self.row_count - 1)


class TimelinePanel(Vertical):
    """Sparkline + crash table. Rows are keyed by crash id."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.crashes: dict[str, CrashRow] = {}
        self._cell_cache = CellCache()
        self._title_counts = ""

    def compose(self) -> ComposeResult:
        yield Static(Text("crashes"), id="crash-spark-label")
        yield Sparkline([], id="crash-spark")
        yield CrashTable(COLUMNS, id="crashes-table")

    def on_mount(self) -> None:
        self.border_title = Text("2 Crash timeline")
        self.watch(self.table, "following", self._show_title, init=False)

    @property
    def table(self) -> CrashTable:
        return self.query_one("#crashes-table", CrashTable)

    def _show_title(self, following: bool | None = None) -> None:
        """Counts, and whether the table follows new crashes (``G`` to resume)."""
        follow = "following" if self.table.following else "G: follow newest"
        text.set_border_title(self, f"2 Crash timeline{self._title_counts} · {follow}")

    @property
    def selected(self) -> CrashRow | None:
        key = self.table.cursor_key
        return None if key is None else self.crashes.get(key)

    def show_snapshot(self, snapshot: Snapshot, now: float) -> None:
        histogram = [float(n) for n in snapshot.crash_histogram]
        spark = self.query_one("#crash-spark", Sparkline)
        if list(spark.data or []) != histogram:
            spark.data = histogram
        total = sum(snapshot.crash_histogram)
        peak = max(snapshot.crash_histogram, default=0)
        caption = f"crashes per {text.exact_duration(snapshot.histogram_bucket_seconds)}"
        caption += f" (peak {peak}) · newest at the bottom"
        label = self.query_one("#crash-spark-label", Static)
        if getattr(label, "_ohm_caption", None) != caption:  # unchanged: no repaint
            label._ohm_caption = caption  # type: ignore[attr-defined]
            label.update(Text(caption))
        # Oldest first: new crashes arrive below, so rows the operator reads never move.
        ordered = sorted(snapshot.crashes, key=lambda c: (c.crashed_at, c.crash_id))
        self.crashes = {str(c.crash_id): c for c in ordered}
        self._cell_cache.keep_only(self.crashes)
        self.table.sync([(str(c.crash_id), self._cached_cells(c, now)) for c in ordered])
        if histogram:
            window = text.exact_duration(len(histogram) * snapshot.histogram_bucket_seconds)
            self._title_counts = f" ({total} in {window})"
        else:
            self._title_counts = f" ({len(snapshot.crashes)} shown)"
        self._show_title()

    def _cached_cells(self, crash: CrashRow, now: float) -> list[Text]:
        signature = (crash, text.moment(crash.crashed_at, now))
        return self._cell_cache.get(str(crash.crash_id), signature, lambda: self._cells(crash, now))

    def _cells(self, crash: CrashRow, now: float) -> list[Text]:
        error_style = tone(self.app, "text-error", bold=True)
        return [
            Text(text.moment(crash.crashed_at, now)),
            text.literal(crash.agent_type, max_len=18),
            text.literal(crash.task_id or "-", max_len=18),
            text.literal(crash.error_type or f"exit {crash.exit_code}", error_style, max_len=24),
            text.literal(action_text(crash), max_len=32),
            text.literal(crash.error_message or "", max_len=60),
        ]
