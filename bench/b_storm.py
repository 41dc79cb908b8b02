"""Figure 11 (ohm's own cost under load): a 200-agent crash storm, and 1,000 idle agents.

Storm: 200 agents of the orchestrator (20 tasks of 10, as when a bad deploy hits
every worker) are real ``/bin/sh`` processes listed in a real-format
``agent_state.json`` (written under the flock protocol). Once ``ohm watch`` (its
own process; a check every 2 s so that it lists them soon) holds a pidfd for each,
the bench closes every agent's stdin in one sweep: each prints a traceback and
exits 1. Respawns crash again at once until ohm gives up on each task (3 attempts,
backoff 0.3 s doubling). The bench times each death itself (a pidfd per agent);
crash -> recorded is that death to the ``crashed`` event's time in ohm's database
(written right after the crash row). ohm's CPU is averaged from the sweep until
every task is given up, every run it started has crashed and been recorded, and
nothing is left to act on.

Idle: 1,000 ``sleep infinity`` agents listed by the stand-in orchestrator,
``ohm watch`` with its default config (a full check every 30 s, pidfds between);
its CPU over one window after it settled.
"""

from __future__ import annotations

import contextlib
import os
import select
import shlex
import sqlite3
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

from bench.common import (
    BIN,
    Orchestrator,
    Procs,
    Row,
    Section,
    cpu_between,
    cpu_reading,
    cpu_window,
    fd_counts,
    fmt,
    percentile,
    rss_mb,
    stat_row,
    wait_until,
    write_empty_state,
    write_ohm_toml,
)
from ohm_tui.engine.sources import statewrite as statefile
from ohm_tui.engine.timeutil import iso_local_naive

STORM = 200
TASKS = 20
IDLE = 1000
TRACEBACK = (
    "read _l; "
    'printf "%s\\n" "working on the task" "Traceback (most recent call last):" '
    '"  File \\"/srv/proj/agents/worker.py\\", line 12, in <module>" "    run()" '
    '"RuntimeError: upstream API returned 500"; exit 1'
)


def _q(db: Path, sql: str) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        return list(conn.execute(sql).fetchall())
    finally:
        conn.close()


def _start_watch(procs: Procs, work: Path, cfg: Path, name: str) -> subprocess.Popen[Any]:
    out_path = work / f"{name}-watch.out"
    out = out_path.open("wb")
    watch = procs.start(
        [str(BIN / "ohm"), "watch", "--config", str(cfg)], stdout=out, stderr=out, cwd=work
    )
    out.close()  # the child has its own copy
    wait_until(lambda: b"watching" in out_path.read_bytes(), 30, f"{name}: ohm watch up")
    return watch


def _spawn_storm(data: Path) -> list[tuple[subprocess.Popen[bytes], str, int]]:
    """200 agents, each blocked on its stdin; listed in one write. (popen, key, pidfd)"""
    logs = data / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    argv = ["/bin/sh", "-c", TRACEBACK, "storm-agent"]
    agents: list[tuple[subprocess.Popen[bytes], str, int]] = []
    entries: dict[str, dict[str, Any]] = {}
    for i in range(STORM):
        task = f"impl-{i % TASKS:02d}"
        pending = logs / f"pending-{i}.log"
        with pending.open("ab") as fh:
            p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=fh, stderr=subprocess.STDOUT)
        started = time.time()
        pending.rename(logs / f"code_developer-{task}-{p.pid}.log")
        entries[str(p.pid)] = {
            "pid": p.pid,
            "agent_type": "code_developer",
            "task_id": task,
            "task_type": "implementation",
            "priority_number": 1,
            "command": shlex.join(argv),
            "started_at": iso_local_naive(started),
            "status": "running",
        }
        agents.append((p, f"{p.pid}@{int(started)}", os.pidfd_open(p.pid)))

    def add(doc: dict[str, Any]) -> None:
        doc.setdefault("active_agents", {}).update(entries)
        doc.setdefault("completed_agents", [])

    statefile.update_agent_state(data / "orchestrator" / "agent_state.json", add)
    return agents


def storm(work: Path, sec: Section, *, fix: bool = True) -> None:
    """The storm; ``fix=False``: ``auto_fix`` off, crashes are only recorded (a reference
    that shows what acting on the crashes adds to crash -> recorded)."""
    name = "storm" if fix else "storm-nofix"
    data = work / name
    write_empty_state(data)
    cfg = write_ohm_toml(
        work / f"{name}-ohm.toml",
        data_dir=str(data),
        auto_fix=fix,
        health_check_interval=2.0,
        max_respawn_attempts=3,
        respawn_backoff_base=0.3,
        respawn_backoff_factor=2.0,
        orchestrator_match=["no-orchestrator-in-this-bench"],
    )
    db = data / "orchestrator.db"
    procs = Procs()
    agents: list[tuple[subprocess.Popen[bytes], str, int]] = []
    try:
        watch = _start_watch(procs, work, cfg, name)
        agents = _spawn_storm(data)
        wait_until(lambda: fd_counts(watch.pid)[1] >= STORM, 60, "ohm watching all 200", 0.2)
        time.sleep(1.0)  # the check that armed them is over
        deaths: dict[int, float] = {}
        by_fd = {fd: p.pid for p, _, fd in agents}
        poller = select.poll()
        for fd in by_fd:
            poller.register(fd, select.POLLIN)
        before = cpu_reading(watch.pid)
        t0 = time.perf_counter()
        for p, _, _ in agents:  # one sweep: within a few ms of each other
            assert p.stdin is not None
            p.stdin.close()
        while len(deaths) < STORM:
            for fd, _ in poller.poll(10_000):
                if by_fd[fd] not in deaths:
                    deaths[by_fd[fd]] = time.time()
                    poller.unregister(fd)
        for p, _, _ in agents:
            p.wait(timeout=10)

        def settled() -> bool:
            if not fix:
                return bool(_q(db, "SELECT COUNT(*) FROM agent_crashes")[0][0] >= STORM)
            given = _q(db, "SELECT COUNT(*) FROM ohm_respawn_state WHERE given_up=1")[0][0]
            busy = _q(
                db, "SELECT COUNT(*) FROM agent_crashes WHERE fix_state IN ('pending','claimed')"
            )[0][0]
            # ... and every run ohm started has crashed and been recorded too.
            started = _q(db, "SELECT COUNT(*) FROM ohm_respawns WHERE ok=1")[0][0]
            rows = _q(db, "SELECT COUNT(*) FROM agent_crashes")[0][0]
            return bool(given == TASKS and busy == 0 and rows >= STORM + started)

        wait_until(settled, 120, "every task given up", interval=0.05)
        window = time.perf_counter() - t0
        cpu = cpu_between(before, cpu_reading(watch.pid)) / window * 100
        procs.stop(watch)
    finally:
        for p, _, fd in agents:
            if p.poll() is None:
                p.kill()
                p.wait()
            with contextlib.suppress(OSError):
                os.close(fd)
        procs.close()

    recorded = dict(
        _q(db, "SELECT agent_key, MIN(ts) FROM ohm_events WHERE kind='crashed' GROUP BY 1")
    )
    latency = [(recorded[key] - deaths[p.pid]) * 1000 for p, key, _ in agents if key in recorded]
    keys = [k for (k,) in _q(db, "SELECT agent_key FROM agent_crashes")]
    respawns = _q(db, "SELECT COUNT(*) FROM ohm_respawns WHERE ok=1")[0][0] if fix else 0
    if not fix:
        sec.rows.append(
            stat_row(
                "11 cost",
                f"crash -> recorded, {STORM} agents at once, auto_fix off (recording alone)",
                latency,
                "ms",
                None,
                note=f"99th percentile {fmt(percentile(latency, 0.99), 'ms')}; ohm's CPU "
                f"{fmt(cpu, '%')} over {window:.1f} s; the same storm with nothing respawned",
            )
        )
        return
    sec.rows.append(
        Row(
            "11 cost",
            f"`ohm watch` CPU during a {STORM}-agent crash storm, share of one core",
            fmt(cpu, "%"),
            "-",
            f"{window:.1f} s",
            "≤ 50.000 %",
            "met" if cpu <= 50.0 else "NOT met",
            f"from the sweep until all {TASKS} tasks were given up: {len(keys)} crash rows "
            f"(each once: {'yes' if len(keys) == len(set(keys)) else 'NO'}), {respawns} respawns",
        )
    )
    if latency:
        p99 = percentile(latency, 0.99)
        sec.rows.append(
            Row(
                "11 cost",
                f"crash -> recorded during the storm, 99th percentile ({STORM} agents at once)",
                fmt(p99, "ms"),
                f"{fmt(min(latency), 'ms')} - {fmt(max(latency), 'ms')}",
                str(len(latency)),
                "≤ 50.0 ms",
                "met" if p99 <= 50.0 else "NOT met",
                f"median {fmt(statistics.median(latency), 'ms')}; death timed by the bench's "
                "pidfd, recorded = the `crashed` event's time in ohm's database",
            )
        )
    else:
        sec.rows.append(Row("11 cost", "crash -> recorded", "-", "-", "0", "-", "error"))


def idle(work: Path, quick: bool, sec: Section) -> None:
    data = work / "idle-1000"
    cfg = write_ohm_toml(work / "idle-1000-ohm.toml", data_dir=str(data))
    procs = Procs()
    orch = Orchestrator(procs, data)
    try:
        orch.spawn_many(IDLE, "worker", ["sleep", "infinity"])
        watch = _start_watch(procs, work, cfg, "idle-1000")
        wait_until(lambda: fd_counts(watch.pid)[1] >= IDLE, 90, "1,000 agents watched", 0.5)
        time.sleep(3.0)  # start-up work done
        avg, slices = cpu_window(watch.pid, 30.0 if quick else 60.0)
        rss = rss_mb(watch.pid)
        procs.stop(watch)
    finally:
        orch.quit()
        procs.close()
    r = stat_row(
        "11 cost",
        f"`ohm watch`, {IDLE:,} idle agents: CPU of one core",
        slices,
        "%",
        0.5,
        note=f"default config (full check every 30 s, pidfds between); RSS {rss:.1f} MB",
    )
    r.median, r.n = fmt(avg, "%"), f"{len(slices) * 5} s"
    r.verdict = "met" if avg <= 0.5 else "NOT met"
    sec.rows.append(r)


def run(work: Path, quick: bool) -> Section:
    sec = Section("storm")
    storm(work, sec)
    storm(work, sec, fix=False)
    idle(work, quick, sec)
    return sec
