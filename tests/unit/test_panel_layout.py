"""Pure rules behind the console's layout: panel heights by content, the histogram scale."""

from __future__ import annotations

import math

from ohm_tui.engine.timeutil import HISTOGRAM_BUCKETS, histogram_bucket
from ohm_tui.tui.layout import share


def test_small_panels_get_what_they_want_and_the_big_one_the_rest() -> None:
    # agents want 5, the timeline 60 (a crash storm), the bugs 4: 35 lines to share.
    assert share(35, [5, 60, 4]) == [5, 26, 4]
    # Two big ones split what is left evenly.
    assert share(35, [30, 60, 4]) == [16, 15, 4]
    # Room nobody asked for is shared evenly; every line is used.
    assert share(30, [5, 5, 4]) == [11, 10, 9]
    # Each panel keeps its minimum, however empty.
    assert share(30, [0, 60, 0]) == [4, 22, 4]
    # Too small for anything else: even.
    assert share(10, [5, 60, 4]) == [4, 3, 3]
    for available in range(12, 60):
        assert sum(share(available, [7, 45, 12])) == available


def test_the_histogram_window_fits_the_history_it_has() -> None:
    assert histogram_bucket(None) == 5  # no crash yet: the shortest window
    assert histogram_bucket(120) == 5  # two minutes of crashes: 36 x 5 s
    assert histogram_bucket(5 * HISTOGRAM_BUCKETS) == 5
    assert histogram_bucket(5 * HISTOGRAM_BUCKETS + 1) == 10
    assert histogram_bucket(3600) == 120  # an hour: 36 x 2 min
    assert histogram_bucket(6 * 3600) == 600  # six hours: 36 x 10 min, the longest
    assert histogram_bucket(30 * 86400) == 600
    assert histogram_bucket(math.nan) == 5 and histogram_bucket(math.inf) == 5
