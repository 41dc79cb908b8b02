"""Figure 9: what ohm costs during the demo's first minute (``ohm demo --no-tui``).

The demo is the busiest minute a new user sees: agents crash at once, are respawned
and crash again, bugs are filed, tasks are given up. ``ohm demo --no-tui --keep``
runs for ``WINDOW`` seconds from its own start; then it is stopped with SIGINT
(as Ctrl-C does) and its kept database is read. The figures:

- CPU of ohm's own process (all its threads; the sample orchestrator, the agents
  and ohm's runners are other processes), as a share of one core;
- ``health_checks`` rows written in that window, and the most written in any one
  second: one per scheduled check (every 5 s in the demo) plus at most one a
  second for the checks that events asked for.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import time
from pathlib import Path

from bench.common import BIN, Procs, Row, Section, cpu_seconds, fmt, wait_until

WINDOW = 60.0
QUICK_WINDOW = 30.0
SCHEDULED_EVERY = 5.0  # the demo's health_check_interval at speed 1
EVENT_GAP = 1.0  # at most one event-driven full check a second


def _rows(database: Path, start: float, end: float) -> list[float]:
    conn = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30)
    try:
        found = conn.execute(
            "SELECT ts FROM health_checks WHERE ts >= ? AND ts < ? ORDER BY ts", (start, end)
        ).fetchall()
    finally:
        conn.close()
    return [float(ts) for (ts,) in found]


def _busiest_second(stamps: list[float]) -> int:
    """The most rows whose times fall within one second of each other."""
    best, lo = 0, 0
    for hi, t in enumerate(stamps):
        while t - stamps[lo] >= 1.0:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


def run(work: Path, quick: bool) -> Section:
    sec = Section("demo")
    window = QUICK_WINDOW if quick else WINDOW
    procs = Procs()
    out_path = work / "demo.out"
    env = dict(os.environ, TMPDIR=str(work))  # the demo's state dir under the work dir
    try:
        with out_path.open("wb") as out:
            started = time.time()
            demo = procs.start(
                [str(BIN / "ohm"), "demo", "--no-tui", "--keep"],
                stdout=out,
                stderr=out,
                cwd=work,
                env=env,
            )
            marker = b"sample orchestrator running in "
            wait_until(lambda: marker in out_path.read_bytes(), 30, "the demo to start")
            first = out_path.read_bytes().split(marker, 1)[1].split(b"\n", 1)[0]
            database = Path(first.decode().strip()) / "orchestrator.db"
            time.sleep(max(0.0, started + window - time.time()))  # the demo's own minute
            cpu = cpu_seconds(demo.pid)
            ended = time.time()
            procs.stop(demo, signal.SIGINT, grace=30.0)
        stamps = _rows(database, started, ended)
    finally:
        procs.close()
    elapsed = ended - started
    bound = elapsed / SCHEDULED_EVERY + elapsed / EVENT_GAP + 1
    busiest = _busiest_second(stamps)
    sec.rows.append(
        Row(
            "9 demo",
            f"`ohm demo --no-tui`, first {elapsed:.0f} s: ohm's CPU (one core)",
            fmt(cpu / elapsed * 100, "%"),
            "-",
            f"{elapsed:.0f} s",
            "≤ 10.000 %",
            "met" if cpu / elapsed * 100 <= 10.0 else "NOT met",
            "ohm's own process (all threads); the orchestrator, agents and runners excluded",
        )
    )
    sec.rows.append(
        Row(
            "9 demo",
            f"same: health_checks rows written in the first {elapsed:.0f} s",
            f"{len(stamps)} rows",
            "-",
            f"{elapsed:.0f} s",
            f"≤ {bound:.0f} (1 per {SCHEDULED_EVERY:g} s scheduled + ≤ 1/s on events)",
            "met" if len(stamps) <= bound and busiest <= 2 else "NOT met",
            f"busiest second: {busiest} row(s)",
        )
    )
    return sec
