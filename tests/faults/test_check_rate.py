"""Full checks do not run in bursts: deaths take the fast path, wake-ups coalesce.

A crash storm (every agent dies at once, every respawn crashes again, then each
task is given up) wakes the engine dozens of times a second. The background loop
answers each death on its fast path (record, decide, respawn) and runs at most one
full check a second for all of them: ``health_checks`` gets one row per scheduled
check plus at most one a second for the event-driven ones.
"""

from __future__ import annotations

import itertools
import time

from tests.faults.kit import MonitorFactory, Orchestrator, count, crash_argv, q
from tests.helpers import wait_until

AGENTS = 40
TASKS = 5
ATTEMPTS = 3
EVENT_GAP = 1.0  # at most one event-driven full check a second
SLACK = 0.05  # ``ts`` is the check's own clock reading; the loop spaces checks by it


def test_crash_storm_runs_at_most_one_full_check_a_second(
    orch: Orchestrator, ohm: MonitorFactory
) -> None:
    orch.fmt = "ohm"
    agents = [
        orch.start("code_developer", f"impl-{i % TASKS}", argv=crash_argv(), write=False)
        for i in range(AGENTS)
    ]
    orch.write()
    # A scheduled check only at start: every later row is event-driven.
    mon = ohm(
        health_check_interval=600.0,
        max_respawn_attempts=ATTEMPTS,
        respawn_backoff_base=0.3,
        crash_threshold_for_bug=3,
    )
    database = mon.config.database_path
    mon.start()
    wait_until(lambda: len(mon.watching()) == AGENTS, timeout=20, message="all agents watched")
    started = time.time()
    for a in agents:
        a.release()
    for a in agents:
        a.popen.wait(timeout=10)

    def settled() -> bool:
        given_up = count(database, "SELECT COUNT(*) FROM ohm_respawn_state WHERE given_up=1")
        busy = count(
            database,
            "SELECT COUNT(*) FROM agent_crashes WHERE fix_state IN ('pending', 'claimed')",
        )
        runs = {k for (k,) in q(database, "SELECT agent_key FROM ohm_agents")}
        crashed = {k for (k,) in q(database, "SELECT agent_key FROM agent_crashes")}
        return given_up == TASKS and busy == 0 and runs <= crashed

    # No scheduled check is due for 10 minutes: the storm is handled on the fast path.
    wait_until(settled, timeout=30, interval=0.05, message="storm handled")
    ended = time.time()
    mon.stop()

    crashes = count(database, "SELECT COUNT(*) FROM agent_crashes")
    respawned = count(database, "SELECT COUNT(*) FROM ohm_agents")
    assert respawned == TASKS * ATTEMPTS
    assert crashes == AGENTS + respawned  # every death recorded, each once
    stamps = [float(ts) for (ts,) in q(database, "SELECT ts FROM health_checks ORDER BY ts")]
    during = [t for t in stamps if t >= started]
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    assert all(g >= EVENT_GAP - SLACK for g in gaps), [round(g, 3) for g in gaps]
    assert len(during) <= (ended - started) / EVENT_GAP + 1, (len(during), ended - started)
    assert len(stamps) < crashes  # not a full check per death
