"""What every part of the store shares: statuses, limits, ``StoreError``, ``RespawnState``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypeVar

T = TypeVar("T")

OPEN_STATUSES: tuple[str, ...] = ("open", "analyzing", "in_progress", "testing")
BUG_STATUSES: tuple[str, ...] = (*OPEN_STATUSES, "resolved", "closed")
BUG_PRIORITIES: tuple[str, ...] = ("Critical", "High", "Medium", "Low")
FIX_STATES: tuple[str, ...] = ("pending", "claimed", "done", "skipped")

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


@dataclass(slots=True)
class RespawnState:
    """Respawn bookkeeping for one task key (``task:spec-20`` or ``type:architect``)."""

    task_key: str
    attempts: int = 0
    last_attempt_ts: float | None = None
    next_allowed_ts: float | None = None
    given_up: bool = False
    given_up_ts: float | None = None
    last_start_ts: float | None = None
    recent_fast_exits: list[float] = field(default_factory=list)
