"""Figures 5 and 7: what watching 50 idle agents costs, side by side.

At once, each with its own 50 ``sleep infinity`` agents:
- ``ohm watch`` (default config: a full check every 30 s, pidfd watches between);
- ``ohm console`` on an 80x24 pseudo-terminal, as over SSH;
- supervisord (50 programs) and circus (50 watchers), for reference.

After every one of them is up and has settled, one window of ``WINDOW`` seconds is
measured: CPU time of each daemon's own process (per-thread nanoseconds), its RSS at
the end, and every byte the console wrote to its terminal. The figure is the
window's average; min - max is over its 5 s slices.
"""

from __future__ import annotations

import time
from pathlib import Path

from bench.common import (
    BIN,
    Orchestrator,
    Procs,
    Section,
    children_of,
    cpu_between,
    cpu_reading,
    fmt,
    rss_mb,
    stat_row,
    wait_until,
)
from bench.peers import Circus, Supervisord
from bench.ptyterm import PtyProgram

AGENTS = 50
SLICE = 5.0


def run(work: Path, quick: bool) -> Section:
    sec = Section("idle")
    window = 10.0 if quick else 30.0
    procs = Procs()
    sleeper = ["sleep", "infinity"]
    programs = {f"idle{i}": sleeper for i in range(AGENTS)}
    try:
        watch_dir, console_dir = work / "idle-watch", work / "idle-console"
        orchs = [Orchestrator(procs, d) for d in (watch_dir, console_dir)]
        for o in orchs:
            o.spawn_many(AGENTS, "worker", sleeper)
        watch_log = (work / "idle-watch.out").open("wb")
        watch = procs.start(
            [str(BIN / "ohm"), "watch", "--data-dir", str(watch_dir)],
            stdout=watch_log,
            stderr=watch_log,
            cwd=work,
        )
        term = PtyProgram(
            procs, [str(BIN / "ohm"), "console", "--data-dir", str(console_dir)], cwd=str(work)
        )
        sup = Supervisord(work / "idle-supervisord", programs)
        circ = Circus(work / "idle-circus", programs)
        sup_pid = sup.start(procs)
        circ_pid = circ.start(procs)
        wait_until(
            lambda: b"watching" in (work / "idle-watch.out").read_bytes(), 30, "ohm watch up"
        )
        wait_until(lambda: term.first_time(b"worker") is not None, 30, "console painted")
        wait_until(
            lambda: list(sup.states().values()).count("RUNNING") == AGENTS,
            30,
            "supervisord programs running",
            interval=0.5,
        )
        wait_until(
            lambda: list(circ.states().values()).count("active") == AGENTS,
            30,
            "circus watchers active",
            interval=0.5,
        )
        time.sleep(3.0)  # let start-up work (first frames, first checks) finish
        pids = {"watch": watch.pid, "console": term.pid, "sup": sup_pid, "circus": circ_pid}
        slices: dict[str, list[float]] = {k: [] for k in pids}
        byte_slices: list[float] = []
        start = {k: cpu_reading(p) for k, p in pids.items()}
        t_start = time.perf_counter()
        last = dict(start)
        t_last = t_start
        while time.perf_counter() - t_start < window - 1e-3:
            time.sleep(min(SLICE, window - (time.perf_counter() - t_start)))
            now = time.perf_counter()
            for k, p in pids.items():
                reading = cpu_reading(p)
                slices[k].append(cpu_between(last[k], reading) / (now - t_last) * 100)
                last[k] = reading
            byte_slices.append(term.bytes_between(t_last, now) / (now - t_last) / 1000)
            t_last = now
        elapsed = t_last - t_start
        total = {k: cpu_between(start[k], last[k]) / elapsed * 100 for k in pids}
        rss = {k: rss_mb(p) for k, p in pids.items()}
        spare = sum(rss_mb(c) for c in children_of(watch.pid))
        out_bytes = term.bytes_between(t_start, t_last) / elapsed / 1000
        term.close(procs)
        for d in (sup, circ):
            d.stop(procs)
        procs.stop(watch)
        watch_log.close()
        for o in orchs:
            o.quit()
    finally:
        procs.close()

    def row(key: str, what: str, limit: float | None, note: str = "") -> None:
        r = stat_row("5 idle", what, slices[key], "%", limit, note=note)
        r.median, r.n = fmt(total[key], "%"), f"{elapsed:.0f} s"
        r.verdict = r.verdict if limit is None else ("met" if total[key] <= limit else "NOT met")
        sec.rows.append(r)

    row(
        "watch",
        f"`ohm watch`, {AGENTS} idle agents: CPU of one core",
        0.1,
        "default config (full check every 30 s)",
    )
    sec.rows.append(
        stat_row(
            "5 idle",
            f"`ohm watch`, {AGENTS} idle agents: RSS",
            [rss["watch"]],
            "MB",
            40.0,
            note=f"plus {spare:.1f} MB for its spare runner (an idle child kept for fast respawns)",
        )
    )
    row("sup", f"supervisord 4.3, {AGENTS} idle programs: CPU", None, f"RSS {rss['sup']:.1f} MB")
    row(
        "circus",
        f"circus 0.19, {AGENTS} idle watchers: CPU",
        None,
        f"RSS {rss['circus']:.1f} MB (circusd only)",
    )
    row(
        "console",
        f"console (`ohm console`, 80x24 pty), {AGENTS} idle agents: CPU",
        2.0,
        f"RSS {rss['console']:.1f} MB",
    )
    r = stat_row(
        "7 over SSH",
        f"idle console at 80x24: bytes written to the terminal, {AGENTS} agents",
        byte_slices,
        "KB/s",
        2.0,
        note="everything read from the pty master",
    )
    r.median, r.n = fmt(out_bytes, "KB/s"), f"{elapsed:.0f} s"
    r.verdict = "met" if out_bytes <= 2.0 else "NOT met"
    sec.rows.append(r)
    return sec
