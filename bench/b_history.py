"""Figure 8: history queries over a million crash rows, and retention.

- ``ohm crashes --last=24h`` over 1,000,000 rows (90 days of history, so the last 24 h
  hold about 11,000 of them): in process (``ohm_tui.cli.main.main``) and as a fresh
  process; the engine's query alone (``monitor.crashes(since)``) is shown beside it.
- retention: ten simulated days of crashes, ``Store.prune`` after each as the engine
  runs it; the file grows for ``retention_days`` and then stops growing (SQLite reuses
  the pages prune frees; it never shrinks the file without a VACUUM).
"""

from __future__ import annotations

import contextlib
import io
import os
import sqlite3
import subprocess
import time
from pathlib import Path

from bench.common import BIN, PYTHON, REPO, Row, Section, fmt, stat_row
from bench.history import fill_crashes
from ohm_tui.engine.monitor import OrchestratorHealthMonitor
from ohm_tui.engine.store import Store

ROWS = 1_000_000
SPAN_DAYS = 90


def start_fill(work: Path, quick: bool) -> tuple[subprocess.Popen[bytes], Path, int]:
    """Fill the big database in another process (the bench waits on peers meanwhile)."""
    data = work / "history"
    data.mkdir(parents=True, exist_ok=True)
    n = ROWS // 5 if quick else ROWS
    db = data / "orchestrator.db"
    p = subprocess.Popen(
        [PYTHON, "-m", "bench.history", str(db), str(n), str(SPAN_DAYS * 86400)],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
    )
    return p, data, n


def db_mb(db: Path) -> float:
    size = 0
    for suffix in ("", "-wal"):
        with contextlib.suppress(OSError):
            size += os.path.getsize(f"{db}{suffix}")
    return size / 1e6


def queries(sec: Section, data: Path, n: int, work: Path, runs: int) -> None:
    from ohm_tui.cli.main import main as ohm_main

    since_text = "24h"
    engine_s: list[float] = []
    inproc_s: list[float] = []
    subproc_s: list[float] = []
    shown = 0
    mon = OrchestratorHealthMonitor({"data_dir": str(data)}, read_only=True, name="bench")
    try:
        for _ in range(runs):
            t0 = time.perf_counter()
            shown = len(mon.crashes(time.time() - 86400))
            engine_s.append(time.perf_counter() - t0)
    finally:
        mon.close()
    for _ in range(runs):
        sink = io.StringIO()
        t0 = time.perf_counter()
        with contextlib.redirect_stdout(sink):
            ohm_main(["crashes", f"--last={since_text}", "--data-dir", str(data)])
        inproc_s.append(time.perf_counter() - t0)
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(
            [str(BIN / "ohm"), "crashes", f"--last={since_text}", "--data-dir", str(data)],
            cwd=work,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=120,
            check=False,
        )
        subproc_s.append(time.perf_counter() - t0)
    what = f"{n:,} rows ({SPAN_DAYS} days), {shown:,} in the last 24 h"
    sec.rows.append(
        stat_row(
            "8 history",
            f"`ohm crashes --last=24h`, in process, {what}",
            inproc_s,
            "s",
            0.5,
            note="main([...]) with stdout to memory; table rendering included",
        )
    )
    sec.rows.append(
        stat_row(
            "8 history",
            f"`ohm crashes --last=24h`, fresh process, {what}",
            subproc_s,
            "s",
            0.5,
            note="interpreter start and imports included; output to /dev/null",
        )
    )
    sec.rows.append(
        stat_row(
            "8 history",
            f"engine query alone: monitor.crashes(now - 24h), {what}",
            engine_s,
            "s",
            None,
            note="index range scan; the rest of the CLI time is formatting the table",
        )
    )


def retention(sec: Section, work: Path, quick: bool) -> None:
    """Ten simulated days of crashes with the engine's prune after each day."""
    data = work / "retention"
    data.mkdir(parents=True, exist_ok=True)
    db = data / "orchestrator.db"
    per_day = 5_000 if quick else 20_000
    days = 10
    keep_days = 7.0
    start = time.time() - days * 86400
    sizes: list[float] = []
    pruned = 0
    prune_s = 0.0
    for day in range(days):
        newest = start + (day + 1) * 86400
        _append_day(db, per_day, newest)
        store = Store(db)
        try:
            t0 = time.perf_counter()
            while True:
                n = store.prune(older_than=newest - keep_days * 86400)
                pruned += n
                if n == 0:
                    break
            prune_s += time.perf_counter() - t0
        finally:
            store.close()
        sizes.append(db_mb(db))
    conn = sqlite3.connect(db)
    try:
        rows = conn.execute("SELECT COUNT(*) FROM agent_crashes").fetchone()[0]
    finally:
        conn.close()
    # Each day is added before that day's prune, so the file holds keep_days + 1 days
    # at its peak; from then on it must not grow.
    full = int(keep_days)
    plateau = max(sizes[full + 1 :]) <= sizes[full] * 1.05
    sec.rows.append(
        Row(
            "8 history",
            f"DB size under retention ({keep_days:g} days): {per_day:,} crashes a day "
            f"for {days} days, Store.prune after each",
            f"{sizes[-1]:.0f} MB",
            f"{min(sizes):.0f} - {max(sizes):.0f} MB",
            str(days),
            "bounded by retention",
            "met" if plateau else "NOT met",
            "MB by day: "
            + ", ".join(f"{s:.0f}" for s in sizes)
            + f"; {rows:,} rows kept, {pruned:,} pruned in {fmt(prune_s, 's')}",
        )
    )


def _append_day(db: Path, n: int, newest: float) -> None:
    """One day of crashes (a bulk load into the existing file, as ``fill_crashes`` does)."""
    if not db.exists():
        fill_crashes(db, n, newest=newest, span=86400)
        return
    tmp = db.with_name("day.db")
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(OSError):
            os.unlink(f"{tmp}{suffix}")
    fill_crashes(tmp, n, newest=newest, span=86400)
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        conn.execute("ATTACH DATABASE ? AS day", (str(tmp),))
        cols = [
            r[1] for r in conn.execute("PRAGMA table_info(agent_crashes)") if r[1] != "crash_id"
        ]
        names = ", ".join(cols)
        conn.execute("BEGIN")
        conn.execute(f"INSERT INTO agent_crashes ({names}) SELECT {names} FROM day.agent_crashes")
        conn.execute("COMMIT")
        conn.execute("DETACH DATABASE day")
    finally:
        conn.close()


def run(work: Path, quick: bool, fill: tuple[subprocess.Popen[bytes], Path, int]) -> Section:
    sec = Section("history")
    p, data, n = fill
    t0 = time.perf_counter()
    if p.wait(timeout=600) != 0:
        sec.rows.append(
            Row("8 history", "history database", "-", "-", "0", "-", "error", "fill failed")
        )
        return sec
    sec.notes.append(
        f"history database: {n:,} rows, {db_mb(data / 'orchestrator.db'):.0f} MB "
        f"(waited {time.perf_counter() - t0:.1f} s for its background fill)"
    )
    queries(sec, data, n, work, 3 if quick else 5)
    retention(sec, work, quick)
    return sec
