"""An aligned-table formatter for people reading a terminal.

Plain text on purpose: the CLI output goes to pipes, journals and ``less`` as
often as to a colour terminal. At a terminal, a table fits its width: the
columns that matter least are left out first, and only then is the long text
(always the last columns) cut, so an 80-column table reads
``2 minutes ago  architect [4242]  spec-20  ImportError  cannot import name…``
instead of every column cut to a few letters. Widths are terminal cells, not
characters: ``架构师`` takes six, an emoji two. Piped output and ``--wide`` get
every column in full.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from rich.cells import cell_len, set_cell_size

ELLIPSIS = "…"
GAP = "  "


@dataclass(frozen=True)
class Column:
    """One column: its header, how much it matters, and how far it may be cut.

    ``priority`` 0 is always shown; when the terminal is too narrow, the column
    with the highest number goes first (the rightmost of equals). ``min_width``
    is how many cells the column may be cut to; ``None`` means never cut (times,
    PIDs, statuses: a cut one would say something false). ``long`` marks the
    long text (a message, a title), always last: it is cut before anything else.
    """

    header: str
    priority: int = 0
    min_width: int | None = None
    long: bool = False


def terminal_width(wide: bool = False) -> int | None:
    """Cells to fit in: ``COLUMNS`` or the terminal's; ``None`` (no limit) for a pipe.

    Output piped to ``grep`` or a file is not cut: nobody reads it at 80 columns,
    and a script must get whole lines. ``--wide`` asks for the same at a terminal.
    """
    if wide or not sys.stdout.isatty():
        return None
    return max(20, shutil.get_terminal_size((80, 24)).columns)


def one_line(text: str) -> str:
    """Collapse newlines and tabs, so a cell never breaks a row."""
    return " ".join(text.split())


def truncate(text: str, width: int) -> str:
    """``text`` cut to ``width`` cells, ending in an ellipsis when cut."""
    if width <= 0:
        return ""
    if cell_len(text) <= width:
        return text
    if width == 1:
        return ELLIPSIS
    return set_cell_size(text, width - 1).rstrip() + ELLIPSIS


def pad(text: str, width: int) -> str:
    """``text`` padded with spaces to ``width`` cells."""
    return text + " " * max(0, width - cell_len(text))


def _floor(col: Column, natural: int) -> int:
    """The fewest cells ``col`` may take: its natural width unless it is long text."""
    if col.min_width is None:
        return natural
    return min(natural, max(col.min_width, cell_len(col.header)))


def layout(columns: Sequence[Column], naturals: Sequence[int], budget: int) -> dict[int, int]:
    """Which columns to show (by index) and how wide, to fit ``budget`` cells.

    1. Leave out the least important columns until the rest fit at their floors.
    2. Give every shown column its natural width, then cut the long text (the
       widest first) a cell at a time until the line fits; only when that is at
       its floor, other cuttable columns (an agent type 60 characters long).
    """
    shown = list(range(len(columns)))
    floors = [_floor(c, n) for c, n in zip(columns, naturals, strict=True)]

    def need(indexes: list[int], widths: Sequence[int]) -> int:
        return sum(widths[i] for i in indexes) + len(GAP) * max(0, len(indexes) - 1)

    while need(shown, floors) > budget:
        droppable = [i for i in shown if columns[i].priority > 0]
        if not droppable:
            break
        shown.remove(max(droppable, key=lambda i: (columns[i].priority, i)))
    widths = {i: naturals[i] for i in shown}
    over = need(shown, naturals) - budget
    while over > 0:
        cuttable = [i for i in shown if widths[i] > floors[i]]
        cuttable = [i for i in cuttable if columns[i].long] or cuttable
        if not cuttable:
            break
        widest = max(cuttable, key=lambda i: (widths[i] - floors[i], i))
        widths[widest] -= 1
        over -= 1
    return widths


def render_table(
    columns: Sequence[Column | str],
    rows: Sequence[Sequence[str]],
    *,
    width: int | None = None,
    wide: bool = False,
) -> str:
    """Aligned columns fitting ``width`` cells (by default the terminal's, see above).

    Cells must already be sanitized; newlines are collapsed here. Every line is
    at most ``width`` cells, whatever the text: a last resort cuts the line itself.
    """
    cols = [c if isinstance(c, Column) else Column(c) for c in columns]
    cells = [[one_line(str(c)) for c in row] for row in rows]
    heads = [one_line(c.header) for c in cols]
    naturals = [cell_len(h) for h in heads]
    for row in cells:
        for i, cell in enumerate(row[: len(heads)]):
            naturals[i] = max(naturals[i], cell_len(cell))
    budget = terminal_width(wide) if width is None else width
    widths = dict(enumerate(naturals)) if budget is None else layout(cols, naturals, budget)
    lines = []
    for row in [heads, *cells]:
        padded = list(row) + [""] * (len(heads) - len(row))
        parts = [pad(truncate(padded[i], w), w) for i, w in sorted(widths.items())]
        line = GAP.join(parts).rstrip()
        if budget is not None and cell_len(line) > budget:
            line = truncate(line, budget)
        lines.append(line)
    return "\n".join(lines)
