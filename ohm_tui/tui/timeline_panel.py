"""The crash timeline: a sparkline of crashes per interval over a keyed table, newest first."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Sparkline, Static

from ohm_tui.engine.models import CrashRow, Snapshot
from ohm_tui.tui import text
from ohm_tui.tui.keyed_table import CellCache, KeyedTable
from ohm_tui.tui.tones import tone

COLUMNS: list[tuple[str, str]] = [
    ("When", "when"),
    ("Agent", "agent"),
    ("Task", "task"),
    ("Error", "error"),
    ("Action", "action"),  # before the message: at 80 columns the message is what gets cut
    ("Message", "message"),
]


def action_text(crash: CrashRow) -> str:
    """What ohm did about a crash: ``respawned 2/3``, ``gave up``, ``bug BUG-004`` (as the CLI)."""
    return text.clean(text.crash_action(crash))


class TimelinePanel(Vertical):
    """Sparkline + crash table. Rows are keyed by crash id."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.crashes: dict[str, CrashRow] = {}
        self._cell_cache = CellCache()

    def compose(self) -> ComposeResult:
        yield Static(Text("crashes"), id="crash-spark-label")
        yield Sparkline([], id="crash-spark")
        yield KeyedTable(COLUMNS, id="crashes-table")

    def on_mount(self) -> None:
        self.border_title = Text("2 Crash timeline")

    @property
    def table(self) -> KeyedTable:
        return self.query_one("#crashes-table", KeyedTable)

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
        caption = f"crashes per {text.duration(snapshot.histogram_bucket_seconds)}"
        caption += f" (peak {peak}) · newest first below"
        label = self.query_one("#crash-spark-label", Static)
        if getattr(label, "_ohm_caption", None) != caption:  # unchanged: no repaint
            label._ohm_caption = caption  # type: ignore[attr-defined]
            label.update(Text(caption))
        ordered = sorted(snapshot.crashes, key=lambda c: (c.crashed_at, c.crash_id), reverse=True)
        self.crashes = {str(c.crash_id): c for c in ordered}
        self._cell_cache.keep_only(self.crashes)
        self.table.sync([(str(c.crash_id), self._cached_cells(c, now)) for c in ordered])
        if histogram:
            window = text.duration(len(histogram) * snapshot.histogram_bucket_seconds)
            text.set_border_title(self, f"2 Crash timeline ({total} in {window})")
        else:
            text.set_border_title(self, f"2 Crash timeline ({len(snapshot.crashes)} shown)")

    def _cached_cells(self, crash: CrashRow, now: float) -> list[Text]:
        signature = (crash, text.ago(crash.crashed_at, now))
        return self._cell_cache.get(str(crash.crash_id), signature, lambda: self._cells(crash, now))

    def _cells(self, crash: CrashRow, now: float) -> list[Text]:
        error_style = tone(self.app, "text-error", bold=True)
        return [
            Text(text.ago(crash.crashed_at, now)),
            text.literal(crash.agent_type, max_len=18),
            text.literal(crash.task_id or "-", max_len=18),
            text.literal(crash.error_type or f"exit {crash.exit_code}", error_style, max_len=24),
            text.literal(action_text(crash), max_len=32),
            text.literal(crash.error_message or "", max_len=60),
        ]
