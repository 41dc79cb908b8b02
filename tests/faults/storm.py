"""The crash storm shared by the engine and the console cases: 200 agents of the
orchestrator (20 tasks, 10 agents each, as when a bad deploy hits every worker)
die within one second, each leaving a traceback; every respawn crashes too."""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from tests.faults.kit import Agent, Orchestrator, count, crash_argv, q

AGENTS = 200
TASKS = 20
MAX_ATTEMPTS = 3
BACKOFF = 0.3
CONFIG = {
    "max_respawn_attempts": MAX_ATTEMPTS,
    "respawn_backoff_base": BACKOFF,
    "respawn_backoff_factor": 2.0,
    "health_check_interval": 0.2,
    "crash_threshold_for_bug": 3,
    "crash_storm_threshold": 10,
}
ERRORS = (
    "RuntimeError: upstream API returned 500",
    "ImportError: cannot import name 'SkillNames' from 'coffee_maker.autonomous.skill_loader'",
)


def start_agents(orch: Orchestrator) -> list[Agent]:
    agents = [
        orch.start(
            "code_developer",
            f"impl-{i % TASKS:02d}",
            argv=crash_argv(ERRORS[(i % TASKS) % 2]),
            write=False,
        )
        for i in range(AGENTS)
    ]
    orch.write()
    return agents


def crash_all(agents: list[Agent]) -> float:
    """Close every agent's stdin in one sweep; returns how long the sweep took."""
    t0 = time.monotonic()
    for a in agents:
        a.release()
    spread = time.monotonic() - t0
    for a in agents:
        a.popen.wait(timeout=10)
    return spread


def settled(database: Path) -> bool:
    """Every task given up, nothing left to act on."""
    given_up = count(database, "SELECT COUNT(*) FROM ohm_respawn_state WHERE given_up=1")
    busy = count(
        database, "SELECT COUNT(*) FROM agent_crashes WHERE fix_state IN ('pending', 'claimed')"
    )
    return given_up == TASKS and busy == 0


@dataclass
class Verdict:
    crash_rows: int
    runs: int
    respawns: int


def verify(database: Path, agents: list[Agent]) -> Verdict:
    """Every crash once; respawns within limits and backoff; bugs deduplicated and
    rate limited. Returns the totals for the caller's own checks."""
    keys = [k for (k,) in q(database, "SELECT agent_key FROM agent_crashes")]
    respawned_runs = {k for (k,) in q(database, "SELECT agent_key FROM ohm_agents")}
    originals = {a.key for a in agents}
    # Every run that died, original or respawned, has exactly one crash row.
    assert len(keys) == len(set(keys))
    assert set(keys) == originals | respawned_runs
    crashed_events = count(database, "SELECT COUNT(*) FROM ohm_events WHERE kind='crashed'")
    assert crashed_events == len(keys)

    # Respawns: at most MAX_ATTEMPTS per task, each after its backoff.
    rows = q(
        database,
        "SELECT r.task_key, r.ts, c.crashed_ts FROM ohm_respawns r "
        "JOIN agent_crashes c ON c.crash_id = r.crash_id WHERE r.ok = 1 ORDER BY r.ts",
    )
    per_task: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for task, ts, crashed in rows:
        per_task[str(task)].append((float(ts), float(crashed)))
    assert len(per_task) == TASKS
    for task, seq in per_task.items():
        assert len(seq) == MAX_ATTEMPTS, (task, seq)
        for attempt, (ts, crashed) in enumerate(seq):
            wait = 0.0 if attempt == 0 else BACKOFF * 2.0 ** (attempt - 1)
            assert ts - crashed >= wait - 0.02, (task, attempt, ts - crashed)
    states = q(database, "SELECT attempts, given_up FROM ohm_respawn_state")
    assert len(states) == TASKS and all(a == MAX_ATTEMPTS and g == 1 for a, g in states)
    assert count(database, "SELECT COUNT(*) FROM ohm_events WHERE kind='gave_up'") == TASKS
    assert len(respawned_runs) == TASKS * MAX_ATTEMPTS

    # Bugs: one per fingerprint while open, at most one new crash bug per hour.
    crash_bugs = q(database, "SELECT bug_number FROM ohm_bug_meta WHERE issue_type='agent_crash'")
    assert len(crash_bugs) == 1, crash_bugs
    filed = count(
        database,
        "SELECT COUNT(*) FROM ohm_events WHERE kind='bug_filed' "
        'AND data LIKE \'%"issue_type": "agent_crash"%\'',
    )
    assert filed == 1
    limited = count(database, "SELECT COUNT(*) FROM ohm_events WHERE kind='bug_rate_limited'")
    assert limited >= 1  # the second fingerprint was held back, and said so
    return Verdict(len(keys), len(originals | respawned_runs), len(rows))
