"""Figure 10 (endurance): ``ohm watch`` on one state directory while 100,000 agent
runs (10,000 with ``--quick``) start, crash, get respawned, give up, complete and
go stale at 60 runs a second.

The orchestrator is ``agents/churn.py`` (another process, the real file format, the
flock protocol; its runs are real ``/bin/sh`` processes). ``ohm watch`` is a real
daemon, its own process, with a full check every 2 s (runs live under a second;
the default 30 s would see most of them only as dead entries). Every 1,000 runs
the bench reads its RSS, open fds, pidfds and threads from ``/proc``. After the
last run the bench waits until ohm has recorded every crash and acted on it.

Checked from ohm's database (read-only) and the driver's own account:
- every crash the driver caused has exactly one ``agent_crashes`` row, and so has
  every run ohm respawned that crashed; no other run has one;
- each crash has one ``crashed`` event, and ``ohm watch`` printed each event once;
- nothing older than the retention window is kept.
"""

from __future__ import annotations

import json
import os
import sqlite3
import statistics
import subprocess
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.common import (
    AGENTS,
    BIN,
    PYTHON,
    Procs,
    Row,
    Section,
    cpu_seconds,
    fd_counts,
    fmt,
    rss_mb,
    thread_count,
    wait_until,
    write_empty_state,
    write_ohm_toml,
)

CHURN = str(AGENTS / "churn.py")
RATE = 60.0
INTERVAL = 2.0
RETENTION_DAYS = 7.0


def _q(db: Path, sql: str) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        return list(conn.execute(sql).fetchall())
    finally:
        conn.close()


def _is_time(text: str) -> bool:
    try:
        datetime.fromisoformat(text)
    except ValueError:
        return False
    return True


def _sample(pid: int, runs: int) -> dict[str, float]:
    fds, pidfds = fd_counts(pid)
    return {
        "runs": runs,
        "t": time.monotonic(),
        "rss": rss_mb(pid),
        "fds": fds,
        "pidfds": pidfds,
        "threads": thread_count(pid),
        "cpu": cpu_seconds(pid),
    }


def run(work: Path, quick: bool, runs: int | None = None) -> Section:
    sec = Section("endurance")
    runs = runs or (10_000 if quick else 100_000)
    warm = runs // 10 if runs <= 10_000 else 10_000  # run 10,000 of 100,000
    data = work / "endure"
    write_empty_state(data)
    cfg = write_ohm_toml(
        work / "endure-ohm.toml",
        data_dir=str(data),
        health_check_interval=INTERVAL,
        respawn_backoff_base=0.5,
        max_respawn_attempts=2,
        retention_days=RETENTION_DAYS,
        orchestrator_match=["no-orchestrator-in-this-bench"],
    )
    db = data / "orchestrator.db"
    procs = Procs()
    out_path = work / "endure-watch.out"
    samples: list[dict[str, float]] = []
    done: dict[str, Any] = {}
    try:
        with out_path.open("wb") as out:
            watch = procs.start(
                [str(BIN / "ohm"), "watch", "--config", str(cfg)], stdout=out, stderr=out, cwd=work
            )
            wait_until(lambda: b"watching" in out_path.read_bytes(), 30, "ohm watch up")
            time.sleep(INTERVAL)  # its first check and the spare runner
            samples.append(_sample(watch.pid, 0))
            argv = [PYTHON, CHURN, "--data-dir", str(data), "--runs", str(runs)]
            churn = procs.start(
                [*argv, "--rate", str(RATE), "--linger", "6"],
                stdout=subprocess.PIPE,
                text=True,
            )
            assert churn.stdout is not None
            for line in churn.stdout:
                msg = json.loads(line)
                if "runs" in msg and not msg.get("done"):
                    samples.append(_sample(watch.pid, int(msg["runs"])))
                if msg.get("done"):
                    done = msg
            churn.wait(timeout=60)
            caused = set(done.get("crashes", []))

            def settled() -> bool:
                keys = {k for (k,) in _q(db, "SELECT agent_key FROM agent_crashes")}
                (busy,) = _q(
                    db,
                    "SELECT COUNT(*) FROM agent_crashes WHERE fix_state IN ('pending','claimed')",
                )[0]
                return caused <= keys and busy == 0

            wait_until(settled, 300, "ohm caught up with the churn", interval=1.0)
            wait_until(lambda: fd_counts(watch.pid)[1] == 0, 60, "no run watched", 0.5)
            time.sleep(INTERVAL * 2)  # a check or two with nothing going on
            end = _sample(watch.pid, runs)
            procs.stop(watch)
    finally:
        procs.close()

    elapsed = float(done.get("elapsed") or 0.0)
    rate = runs / elapsed if elapsed else 0.0
    sec.rows.append(
        Row(
            "10 endurance",
            f"`ohm watch`, {runs:,} agent runs on one state directory: runs per second",
            f"{rate:.1f} runs/s",
            "-",
            f"{runs:,}",
            f"≥ {RATE - 10:.0f} runs/s",
            "met" if rate >= RATE - 10 else "NOT met",
            f"{elapsed:.0f} s; a run lives 0.2-0.8 s; per 50: 14 crash (10 tasks, respawned "
            "until given up), 1 crash once (respawn works), 20 complete, 15 stale",
        )
    )
    after_warm = [s for s in samples if s["runs"] >= warm]
    base = next(s for s in samples if s["runs"] >= warm)
    rss = [s["rss"] for s in after_warm] + [end["rss"]]
    growth = end["rss"] - base["rss"]
    sec.rows.append(
        Row(
            "10 endurance",
            f"RSS growth from run {warm:,} to run {runs:,} (after the last crash was handled)",
            fmt(growth, "MB"),
            f"{fmt(min(rss), 'MB')} - {fmt(max(rss), 'MB')}",
            str(len(rss)),
            "≤ 5.0 MB",
            "met" if growth <= 5.0 else "NOT met",
            f"RSS {base['rss']:.1f} MB at run {warm:,}, {end['rss']:.1f} MB at the end; "
            f"{samples[0]['rss']:.1f} MB before the first run",
        )
    )
    for key, what in (("fds", "open fds"), ("pidfds", "pidfds"), ("threads", "threads")):
        during = [s[key] for s in after_warm]
        half = len(during) // 2
        # Flat: back to where it was before the first run, and no upward trend (the
        # second half of the run peaks no higher than the first, but for a few).
        flat = end[key] <= samples[0][key] and max(during[half:]) <= max(during[:half]) + 4
        sec.rows.append(
            Row(
                "10 endurance",
                f"{what} of `ohm watch` from run {warm:,} on",
                f"{statistics.median(during):g}",
                f"{min(during):g} - {max(during):g}",
                str(len(during)),
                "flat: no trend; after the run as before it",
                "met" if flat else "NOT met",
                f"{samples[0][key]:g} before the first run, {end[key]:g} after the last"
                + ("; one per agent running now" if key == "pidfds" else ""),
            )
        )
    keys = [k for (k,) in _q(db, "SELECT agent_key FROM agent_crashes")]
    ours = {k for (k,) in _q(db, "SELECT agent_key FROM ohm_agents")}
    respawned_crashes = sum(1 for k in keys if k in ours)
    foreign = set(keys) - ours
    once = len(keys) == len(set(keys)) and foreign == caused
    sec.rows.append(
        Row(
            "10 endurance",
            "every crash recorded exactly once",
            f"{len(foreign & caused):,}/{len(caused):,}",
            "-",
            f"{len(keys):,} rows",
            "all, each once; no other run",
            "met" if once else "NOT met",
            f"the driver's crashes / its rows; plus {respawned_crashes:,} crashes of runs ohm "
            f"respawned, {len(ours):,} respawns; duplicates {len(keys) - len(set(keys))}, "
            f"missed {len(caused - foreign)}, false {len(foreign - caused)}",
        )
    )
    db_events = dict(_q(db, "SELECT kind, COUNT(*) FROM ohm_events GROUP BY kind"))
    crashed_keys = [k for (k,) in _q(db, "SELECT agent_key FROM ohm_events WHERE kind='crashed'")]
    printed: dict[str, int] = {}
    for line in out_path.read_text(errors="replace").splitlines():
        parts = line.split(" ", 2)
        if len(parts) >= 2 and _is_time(parts[0]):  # an event line, not a log line
            kind = parts[1].rstrip(":")
            printed[kind] = printed.get(kind, 0) + 1
    events_ok = sorted(crashed_keys) == sorted(keys) and printed == db_events
    total = sum(db_events.values())
    sec.rows.append(
        Row(
            "10 endurance",
            "no event lost or duplicated",
            f"{sum(printed.values()):,}/{total:,}",
            "-",
            f"{total:,} events",
            "each once, in the database and on `ohm watch`'s output",
            "met" if events_ok else "NOT met",
            "printed / recorded; one `crashed` event per crash row: "
            + ("yes" if sorted(crashed_keys) == sorted(keys) else "NO")
            + "; by kind: "
            + ", ".join(f"{k} {v:,}" for k, v in sorted(db_events.items())),
        )
    )
    size = sum(os.path.getsize(p) for p in data.glob("orchestrator.db*")) / 1e6
    (oldest,) = _q(db, "SELECT MIN(ts) FROM ohm_events")[0]
    rows = {
        t: _q(db, f"SELECT COUNT(*) FROM {t}")[0][0]  # our own table names
        for t in ("agent_crashes", "ohm_events", "health_checks", "ohm_seen", "ohm_agents")
    }
    within = oldest is None or oldest >= time.time() - RETENTION_DAYS * 86400 - 3600
    sec.rows.append(
        Row(
            "10 endurance",
            f"database after {runs:,} runs",
            fmt(size, "MB"),
            "-",
            "1",
            f"within retention ({RETENTION_DAYS:g} days)",
            "met" if within else "NOT met",
            f"{size * 1e6 / runs:,.0f} bytes a run; rows: "
            + ", ".join(f"{t} {n:,}" for t, n in rows.items())
            + "; the run spans minutes, so nothing reaches the retention window here "
            "(pruning is figure 8)",
        )
    )
    cpu = (end["cpu"] - samples[0]["cpu"]) / (end["t"] - samples[0]["t"]) * 100
    sec.rows.append(
        Row(
            "10 endurance",
            f"`ohm watch` CPU over the whole run ({RATE:g} runs/s)",
            fmt(cpu, "%"),
            "-",
            f"{end['t'] - samples[0]['t']:.0f} s",
            "-",
            "reference",
            f"full check every {INTERVAL:g} s plus every death by pidfd, respawns included",
        )
    )
    return sec
