"""What every part of the store shares: statuses, limits, ``StoreError``."""

from __future__ import annotations

from typing import TypeVar

from ohm_tui.engine.model import PRIORITIES, FixState

T = TypeVar("T")

OPEN_STATUSES: tuple[str, ...] = ("open", "analyzing", "in_progress", "testing")
BUG_STATUSES: tuple[str, ...] = (*OPEN_STATUSES, "resolved", "closed")
BUG_PRIORITIES: tuple[str, ...] = PRIORITIES
FIX_STATES: tuple[str, ...] = tuple(FixState)  # the stored words, defined in model.lifecycle

# Text from agents can be huge; keep rows bounded.
MAX_TEXT = 256 * 1024


class StoreError(Exception):
    """A storage problem people can act on.

    ``kind`` is one of ``locked``, ``read_only``, ``disk_full``, ``corrupt``,
    ``newer_schema``, ``cannot_open``, ``closed``, ``missing_table``, ``io``, ``other``.
    """

    def __init__(self, message: str, kind: str = "other") -> None:
        super().__init__(message)
        self.kind = kind
