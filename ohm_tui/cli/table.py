"""A tiny aligned-table formatter for people reading a terminal.

Plain text on purpose: the CLI output goes to pipes, journals and ``less`` as
often as to a colour terminal. Tables shrink their widest columns to fit the
terminal so that one long log message does not wrap every row.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Sequence

ELLIPSIS = "…"
GAP = "  "
MIN_WIDTH = 6


def terminal_width() -> int | None:
    """Columns to fit in: ``COLUMNS`` or the terminal's; ``None`` (no limit) for a pipe.

    Output piped to ``grep`` or a file is not cut: nobody reads it at 80 columns.
    """
    if "COLUMNS" not in os.environ and not sys.stdout.isatty():
        return None
    return max(20, shutil.get_terminal_size((80, 24)).columns)


def one_line(text: str) -> str:
    """Collapse newlines and tabs, so a cell never breaks a row."""
    return " ".join(text.split())


def truncate(text: str, width: int) -> str:
    """``text`` cut to ``width`` characters, ending in an ellipsis when cut."""
    if width <= 0:
        return ""
    if len(text) <= width:
        return text
    return text[: width - 1] + ELLIPSIS if width > 1 else ELLIPSIS


def _fit(widths: list[int], budget: int, fixed: set[int]) -> list[int]:
    """Shrink the widest shrinkable column, one character at a time, until it fits."""
    widths = list(widths)
    total = sum(widths) + len(GAP) * (len(widths) - 1)
    while total > budget:
        candidates = [i for i, w in enumerate(widths) if i not in fixed and w > max(MIN_WIDTH, 1)]
        if not candidates:
            break
        widest = max(candidates, key=lambda i: widths[i])
        widths[widest] -= 1
        total -= 1
    return widths


def render_table(
    headers: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    width: int | None = None,
    fixed: Sequence[int] = (),
) -> str:
    """Aligned columns, truncated to ``width`` (by default the terminal's, see above).

    ``fixed`` lists column indexes that must never be cut (times, numbers).
    Cells must already be sanitized; newlines are collapsed here.
    """
    cells = [[one_line(str(c)) for c in row] for row in rows]
    heads = [one_line(h) for h in headers]
    natural = [len(h) for h in heads]
    for row in cells:
        for i, cell in enumerate(row[: len(heads)]):
            natural[i] = max(natural[i], len(cell))
    budget = terminal_width() if width is None else width
    widths = natural if budget is None else _fit(natural, budget, set(fixed))
    lines = []
    for row in [heads, *cells]:
        padded = list(row) + [""] * (len(heads) - len(row))
        parts = [truncate(c, w).ljust(w) for c, w in zip(padded, widths, strict=False)]
        lines.append(GAP.join(parts).rstrip())
    return "\n".join(lines)
