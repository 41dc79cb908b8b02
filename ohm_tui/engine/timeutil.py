"""Time in one form: UTC epoch seconds as floats, compared as numbers.

The real orchestrator wrote naive *local* ISO strings next to UTC ones and then
compared them as text, so its time windows never worked. Everything that enters
ohm goes through ``to_epoch`` first.
"""

from __future__ import annotations

import math
import re
import time
from datetime import UTC, datetime

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$", re.IGNORECASE)
_BARE_NUMBER = re.compile(r"^\s*\d+(?:\.\d+)?\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}

# Timestamps before 2000 or more than a day ahead are not believable.
_MIN_EPOCH = 946684800.0


def now() -> float:
    """Current UTC epoch seconds."""
    return time.time()


def to_epoch(value: object) -> float | None:
    """Turn an epoch number or an ISO string into UTC epoch seconds.

    Naive ISO strings are local time, as the real orchestrator writes them.
    Returns ``None`` for anything that is not a believable timestamp (text that
    does not parse, NaN, infinity, bools), so callers degrade instead of raising.
    """
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        f = float(value)
        if not math.isfinite(f):
            return None
        if f > 1e11:  # milliseconds
            f /= 1000.0
        return f if f >= _MIN_EPOCH else None
    if isinstance(value, str):
        s = value.strip()
        if not s:
            return None
        try:
            return to_epoch(float(s))
        except ValueError:
            pass
        if s.endswith(("Z", "z")):
            s = s[:-1] + "+00:00"
        try:
            dt = datetime.fromisoformat(s)
        except ValueError:
            return None
        if dt.tzinfo is None:
            dt = dt.astimezone()  # interpret as local time
        return dt.timestamp()
    return None


def age(ts: float | None, at: float | None = None) -> float | None:
    """Seconds since ``ts``, never negative (a future timestamp counts as fresh)."""
    if ts is None:
        return None
    ref = now() if at is None else at
    return max(0.0, ref - ts)


def iso_utc(ts: float | None = None) -> str:
    """An ISO-8601 UTC string with offset, for columns that hold text."""
    return datetime.fromtimestamp(now() if ts is None else ts, tz=UTC).isoformat()


def iso_local_naive(ts: float) -> str:
    """Naive local ISO, the real orchestrator's ``started_at`` form."""
    return datetime.fromtimestamp(ts).isoformat()


def parse_duration(text: str) -> float:
    """``"90s"``, ``"15m"``, ``"24h"``, ``"7d"`` -> seconds. Raises ``ValueError``.

    The unit is required: is ``24`` hours, minutes or seconds? Guessing would show
    the wrong window without a word, so a bare number is an error that says so.
    """
    if _BARE_NUMBER.match(text or ""):
        n = text.strip()
        raise ValueError(f"invalid duration {n!r}: add a unit (s, m, h, d or w), e.g. {n}h or {n}m")
    m = _DURATION.match(text or "")
    if not m:
        raise ValueError(f"invalid duration {text!r} (use e.g. 90s, 15m, 24h, 7d)")
    seconds = float(m.group(1)) * _UNITS[m.group(2).lower()]
    if seconds <= 0:
        raise ValueError(f"invalid duration {text!r}: must be greater than zero")
    return seconds


HISTOGRAM_BUCKETS = 36
"""Columns of the crash histogram (the sparkline stretches them to its width)."""
HISTOGRAM_STEPS = (5, 10, 20, 60, 120, 300, 600)
"""Seconds per bucket, smallest first: windows of 3 minutes up to 6 hours."""


def histogram_bucket(span: float | None) -> int:
    """Seconds per bucket so that the histogram covers ``span`` seconds of history.

    ``span`` is the age of the oldest crash worth showing. Fitting the window to
    it keeps crashes spread over the columns: a six-hour scale in a two-minute-old
    session puts every crash in the last column, which says nothing.
    """
    if span is not None and math.isfinite(span):
        for step in HISTOGRAM_STEPS:
            if step * HISTOGRAM_BUCKETS >= span:
                return step
        return HISTOGRAM_STEPS[-1]
    return HISTOGRAM_STEPS[0]
