"""Figure 4 (scale): 1,000 live agents that the orchestrator started (``sleep infinity``,
each with its own log), listed in a real-format ``agent_state.json``.

- a full health check's CPU time: ``time.process_time()`` around ``monitor.check()``
  after one warm-up check, no background threads running;
- detection with all 1,000 watched by the running monitor, as in figure 1;
- ``ohm check`` end to end: a new process each time (interpreter start, imports,
  config, a cold check of 1,000 agents, output), wall time.

The same data directory then serves figure 6 (the console with a large history).
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from bench import b_console
from bench.b_detect import monitor_config, orch_detection, watching
from bench.b_respawn import EventLog
from bench.common import BIN, Orchestrator, Procs, Section, stat_row, wait_until
from ohm_tui.engine.monitor import OrchestratorHealthMonitor

AGENTS = 1000


def check_cpu(data: Path, runs: int) -> tuple[list[float], list[float], int]:
    """CPU ms of ``monitor.check()`` after a warm-up check: with the state file as it
    was (the usual case between two orchestrator writes), and right after the file
    was rewritten (it is parsed again); and the live agents the check saw."""
    state = data / "orchestrator" / "agent_state.json"
    # The state file was written a moment ago: a check re-reads a file younger than 1 s.
    settle = state.stat().st_mtime + 1.1 - time.time()
    if settle > 0:
        time.sleep(settle)
    mon = OrchestratorHealthMonitor(monitor_config(data), name="bench-check")
    try:
        active = mon.check().active_agents
        steady = []
        for _ in range(runs):
            t0 = time.process_time()
            mon.check()
            steady.append((time.process_time() - t0) * 1000)
        rewritten = []
        for _ in range(3):
            state.write_bytes(state.read_bytes())  # what the orchestrator's next write does
            t0 = time.process_time()
            mon.check()
            rewritten.append((time.process_time() - t0) * 1000)
        return steady, rewritten, active
    finally:
        mon.close()


def cli_check(data: Path, runs: int, cwd: Path) -> tuple[list[float], str]:
    """Wall seconds of ``ohm check --data-dir DATA`` as a fresh process, and its first line."""
    samples = []
    first = ""
    for _ in range(runs):
        t0 = time.perf_counter()
        res = subprocess.run(
            [str(BIN / "ohm"), "check", "--data-dir", str(data)],
            capture_output=True,
            text=True,
            cwd=cwd,  # no ohm.toml / pyproject.toml there: defaults plus --data-dir
            timeout=60,
            check=False,
        )
        samples.append(time.perf_counter() - t0)
        first = (res.stdout.splitlines() or [res.stderr.strip()])[0]
    return samples, first


def run(work: Path, quick: bool) -> Section:
    sec = Section("scale")
    procs = Procs()
    data = work / "scale"
    orch = Orchestrator(procs, data)
    try:
        t0 = time.perf_counter()
        orch.spawn_many(AGENTS, "worker", ["sleep", "infinity"])
        sec.notes.append(f"started {AGENTS} agents in {time.perf_counter() - t0:.1f} s")

        cpu, rewritten, active = check_cpu(data, 3 if quick else 7)
        sec.rows.append(
            stat_row(
                "4 scale",
                f"full health check CPU, {active} live agents",
                cpu,
                "ms",
                100.0,
                note="time.process_time() around monitor.check(), after a warm-up check",
            )
        )
        sec.rows.append(
            stat_row(
                "4 scale",
                f"full health check CPU, {active} live agents, state file just rewritten",
                rewritten,
                "ms",
                100.0,
                note="the check parses agent_state.json again (1,000 entries)",
            )
        )

        wall, first = cli_check(data, 3 if quick else 5, work)
        sec.rows.append(
            stat_row(
                "4 scale",
                f"`ohm check` end to end, {AGENTS} agents",
                wall,
                "s",
                1.5,
                note=f"fresh process each run; it said: {first[:60]}",
            )
        )

        mon = OrchestratorHealthMonitor(monitor_config(data), name="bench-watch")
        log = EventLog()
        mon.add_listener(log)
        try:
            mon.start()
            wait_until(lambda: len(watching(mon)) >= AGENTS, 60, f"{AGENTS} agents watched")
            samples = orch_detection(mon, log, orch, work, 10 if quick else 20, "scale")
            n_watched = len(watching(mon))
        finally:
            mon.close()
        sec.rows.append(
            stat_row(
                "4 scale",
                f"detection with {n_watched} agents watched",
                samples,
                "ms",
                5.0,
                note="orchestrator's agents, pidfd event path",
            )
        )

        b_console.large_history(sec, data, work, quick)
        b_console.large_fleet(sec, orch, data, work, quick)
    finally:
        orch.quit()
        procs.close()
    return sec
