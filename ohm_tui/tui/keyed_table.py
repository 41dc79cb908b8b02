"""A ``DataTable`` that is synced by diff, so live refreshes never lose the operator's place.

Clearing and refilling a table every second resets the cursor and the scroll
position and makes the screen flicker. ``KeyedTable.sync`` instead removes rows
whose key is gone, adds new keys, calls ``update_cell`` only where a value
changed, and reorders in place; the cursor stays on the same *key*.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import ClassVar

from rich.cells import cell_len
from rich.text import Text
from textual.binding import Binding, BindingType
from textual.coordinate import Coordinate
from textual.widgets import DataTable
from textual.widgets.data_table import CellDoesNotExist, ColumnKey, RowDoesNotExist

from ohm_tui.cli.table import Column, layout

Row = tuple[str, Sequence[Text]]
MIN_WIDTH = 4  # a narrowed column keeps at least three letters and its "…"


class KeyedTable(DataTable[Text]):
    """Rows keyed by a stable id (agent key, crash id, bug number); cells are ``Text`` only.

    Cells are ``Text`` because a ``str`` cell is parsed as markup by ``DataTable``.
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        # DataTable's own enter, shown: the footer lists the focused widget's keys
        # first, so the screen's "enter Details" would never be drawn at all.
        Binding("enter", "select_cursor", "Details", tooltip="Open the selected row"),
        # DataTable's home / end scroll sideways and leave the cursor where it was, so a
        # following ``r`` would act on a row the operator did not choose: move the cursor.
        Binding("home,g", "scroll_top", "First row", show=False, tooltip="Go to the first row"),
        Binding("end,G", "scroll_bottom", "Last row", show=False, tooltip="Go to the last row"),
    ]

    def __init__(
        self,
        columns: Sequence[tuple[str, str]],
        *,
        cuttable: Mapping[str, int] | None = None,
        priorities: Mapping[str, Column] | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        """``cuttable``: text columns that may narrow (to the given width at least) so the
        table fits its width, first listed first; their text ends with ``…``. Other
        columns (numbers, units, statuses) are never cut.

        ``priorities`` (instead of ``cuttable``): each column's :class:`Column`, laid
        out as the CLI and the agents table do (``cli.table.layout``): the least
        important columns are left out first, then the long text is cut."""
        super().__init__(id=id, classes=classes, cursor_type="row", zebra_stripes=True)
        self._column_spec = list(columns)
        self._cells: dict[str, tuple[Text, ...]] = {}
        keys = {key for _, key in self._column_spec}
        self._cuttable = {key: n for key, n in (cuttable or {}).items() if key in keys}
        self._priorities = dict(priorities or {})
        self._shown = [key for _, key in self._column_spec]
        """Keys of the columns drawn, left to right (``priorities`` leaves some out)."""
        self._fitted_to: tuple[int, tuple[int, ...]] | None = None
        for label, key in self._column_spec:
            self.add_column(_label(label), key=key)

    @property
    def shown_columns(self) -> list[str]:
        """Keys of the columns drawn now, left to right."""
        return list(self._shown)

    def _visible(self, cells: Sequence[Text]) -> list[Text]:
        """The cells of the columns drawn, in their order."""
        if len(self._shown) == len(self._column_spec):
            return list(cells)
        index = {key: n for n, (_, key) in enumerate(self._column_spec)}
        return [cells[index[key]] for key in self._shown]

    @property
    def keys(self) -> list[str]:
        """Row keys in display order."""
        return [str(row.key.value) for row in self.ordered_rows]

    @property
    def cursor_key(self) -> str | None:
        """Key of the row under the cursor, or ``None`` when the table is empty."""
        if self.row_count == 0:
            return None
        try:
            key = self.coordinate_to_cell_key(Coordinate(self.cursor_row, 0)).row_key
        except (CellDoesNotExist, RowDoesNotExist):
            return None
        return None if key.value is None else str(key.value)

    def cell_text(self, key: str, column: str) -> str:
        """Plain text of one cell (for tests and for prefilling forms)."""
        cells = self._cells.get(key)
        if cells is None:
            raise KeyError(key)
        index = [k for _, k in self._column_spec].index(column)
        return cells[index].plain

    def set_column_label(self, key: str, label: str) -> None:
        """Relabel a column (a sort arrow); the column never narrows, so nothing jumps."""
        self._column_spec = [(label if k == key else lb, k) for lb, k in self._column_spec]
        if ColumnKey(key) not in self.columns:
            return  # left out at this width: the label is used when it comes back
        column = self.columns[ColumnKey(key)]
        if column.label.plain == label:
            return
        column.label = _label(label)
        column.content_width = max(column.content_width, _cell_width(column.label))
        # DataTable has no public relabel: its render caches hold the old header.
        self._clear_caches()
        self._require_update_dimensions = True
        self.refresh()

    def move_to_key(self, key: str) -> bool:
        """Put the cursor on ``key``; ``False`` when there is no such row."""
        if key not in self._cells:
            return False
        index = self.get_row_index(key)
        if index != self.cursor_row:
            self.move_cursor(row=index)
        return True

    def sync(self, rows: Sequence[Row]) -> None:
        """Make the table show ``rows`` in this order, touching only what changed."""
        wanted = [key for key, _ in rows]
        cursor_key = self.cursor_key
        column_keys = [key for _, key in self._column_spec]
        with self.app.batch_update():
            for stale in set(self._cells) - set(wanted):
                self.remove_row(stale)
                del self._cells[stale]
            for key, cells in rows:
                new = tuple(cells)
                old = self._cells.get(key)
                if old is None:
                    self.add_row(*self._visible(new), key=key)
                    self._cells[key] = new
                    continue
                merged = list(old)
                if len(old) == len(new) and all(b is a for b, a in zip(old, new, strict=True)):
                    continue  # the very same cells: nothing to compare or draw
                for index, (before, after) in enumerate(zip(old, new, strict=True)):
                    if before is not after and before != after:
                        merged[index] = after
                        if column_keys[index] not in self._shown:
                            continue  # left out at this width: kept, not drawn
                        # Re-measuring a column walks all its cells: only do it when
                        # the new value is wider than the column (a crash storm
                        # otherwise blocks the UI thread for seconds).
                        column = self.columns[ColumnKey(column_keys[index])]
                        wider = _cell_width(after) > column.content_width
                        self.update_cell(key, column_keys[index], after, update_width=wider)
                self._cells[key] = tuple(merged)
            if self.keys != wanted:
                self._reorder(wanted)
            if cursor_key is not None and cursor_key in self._cells:
                self.move_to_key(cursor_key)
        self.fit_columns()
        # New rows are measured when the table is next idle: fit again after that.
        self.call_after_refresh(self.fit_columns)

    def on_resize(self) -> None:
        self.fit_columns()

    def fit_columns(self) -> None:
        """Fit the table to its width: by ``priorities`` when given (see
        ``_fit_by_priority``), else by narrowing the ``cuttable`` columns."""
        if self._priorities:
            self._fit_by_priority()
        else:
            self._fit_cuttable()

    def _fit_by_priority(self) -> None:
        """Leave out the least important columns, then cut the long text, as the CLI
        and the agents table do; a column left out or back rebuilds the columns (only
        when the width or the widest cells change, never on an idle refresh)."""
        available = self.scrollable_content_region.width
        if available <= 0:
            return
        naturals = tuple(
            max([cell_len(label)] + [cells[n].cell_len for cells in self._cells.values()])
            for n, (label, _) in enumerate(self._column_spec)
        )
        if self._fitted_to == (available, naturals):
            return
        self._fitted_to = (available, naturals)
        spec = [self._priorities.get(key, Column(label)) for label, key in self._column_spec]
        # DataTable pads each column by a cell on both sides; the layout counts a
        # two-cell gap between columns: the same, less the two outer cells.
        padding = self.cell_padding
        widths = layout(spec, naturals, available - 2 * padding)
        shown = [self._column_spec[n][1] for n in sorted(widths)]
        if shown != self._shown:
            self._show_columns(shown)
        width_of = {self._column_spec[n][1]: w for n, w in widths.items()}
        for key in shown:
            column = self.columns[ColumnKey(key)]
            column.auto_width = False
            column.width = width_of[key]
        self._clear_caches()
        self._require_update_dimensions = True
        self.refresh()

    def _show_columns(self, shown: list[str]) -> None:
        """Draw only ``shown`` columns: rebuilt from the kept cells, the cursor kept."""
        cursor_key = self.cursor_key
        order = self.keys
        labels = dict((key, label) for label, key in self._column_spec)
        self._shown = shown
        with self.app.batch_update():
            self.clear(columns=True)
            for key in shown:
                self.add_column(_label(labels[key]), key=key)
            for key in order:
                self.add_row(*self._visible(self._cells[key]), key=key)
            if cursor_key is not None:
                self.move_to_key(cursor_key)

    def _fit_cuttable(self) -> None:
        """Narrow the cuttable columns until the table fits its width, so that the
        edge of the screen never cuts a cell (a number, a unit, a word without ``…``);
        the text of a narrowed column ends with ``…`` (its cells overflow with an
        ellipsis). Columns grow back to their content when there is room again."""
        if not self._cuttable:
            return
        available = self.scrollable_content_region.width
        columns = self.columns
        naturals = tuple(c.content_width for c in columns.values())
        if available <= 0 or self._fitted_to == (available, naturals):
            return  # nothing changed since the last fit: no re-layout
        self._fitted_to = (available, naturals)
        padding = 2 * self.cell_padding
        over = sum(c.content_width + padding for c in columns.values()) - available
        widths = {key: columns[ColumnKey(key)].content_width for key in self._cuttable}
        # To each column's floor first, then (still too wide) down to a few letters.
        for floors in (self._cuttable, dict.fromkeys(self._cuttable, MIN_WIDTH)):
            for key, floor in floors.items():
                cut = max(0, min(over, widths[key] - floor))
                widths[key] -= cut
                over -= cut
        changed = False
        for key, width in widths.items():
            column = columns[ColumnKey(key)]
            auto = width == column.content_width
            if column.auto_width != auto or (not auto and column.width != width):
                column.auto_width = auto
                column.width = width if not auto else 0
                changed = True
        if changed:  # DataTable has no public "set width": redraw from its caches
            self._clear_caches()
            self._require_update_dimensions = True
            self.refresh()

    def _reorder(self, wanted: list[str]) -> None:
        # DataTable.sort hands the key function a row's cell values, not its key; the
        # first cell object of each row is ours and unique, so its identity names the row.
        rank = {id(self._visible(self._cells[key])[0]): index for index, key in enumerate(wanted)}
        self.sort(key=lambda values: rank[id(values[0])])


def _label(label: str) -> Text:
    """A column header: a narrowed column ends its label with ``…`` too."""
    return Text(label, overflow="ellipsis", no_wrap=True, end="")


def _cell_width(cell: object) -> int:
    """Terminal cells a table value needs (Rich ``Text`` or anything printable)."""
    from rich.text import Text

    return cell.cell_len if isinstance(cell, Text) else len(str(cell))


class CellCache:
    """A row's cells, kept while the row's signature (what it shows) is unchanged.

    Building and sanitizing Rich Texts for a thousand rows every frame is most of
    a frame; a row whose data did not change hands back the same objects, which
    ``KeyedTable.sync`` then skips without comparing.
    """

    def __init__(self) -> None:
        self._rows: dict[str, tuple[object, list[Text]]] = {}

    def get(self, key: str, signature: object, build: Callable[[], list[Text]]) -> list[Text]:
        cached = self._rows.get(key)
        if cached is not None and cached[0] == signature:
            return cached[1]
        cells = build()
        self._rows[key] = (signature, cells)
        return cells

    def keep_only(self, keys: Iterable[str]) -> None:
        wanted = set(keys)
        for gone in self._rows.keys() - wanted:
            del self._rows[gone]
