"""ohm is killed mid-cycle (SIGKILL) at random points, 20 times.

A monitor process cycles as fast as it can (check, respawns, cleanup, bugs)
while agents keep crashing; it is SIGKILLed at a random moment, and a new one
starts, 20 times over. Afterwards a monitor runs until everything is settled,
and then: the database is consistent, every crash is on record exactly once,
no crash was respawned twice, and each task's respawn count is right.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import psutil
import pytest

from tests.faults.kit import (
    PY,
    Agent,
    MonitorFactory,
    Orchestrator,
    base_config,
    count,
    crash_once_argv,
    db,
    python_env,
    q,
)
from tests.helpers import wait_until

KILLS = 20
MAX_ATTEMPTS = 3
SEED = int(os.environ.get("OHM_FAULT_SEED", "20251019"))
CONFIG = {
    "health_check_interval": 0.05,
    "respawn_backoff_base": 0.05,
    "respawn_backoff_factor": 2.0,
    "max_respawn_attempts": MAX_ATTEMPTS,
}


def _monitor_process(data_dir: Path) -> subprocess.Popen[str]:
    cfg = json.dumps(base_config(data_dir, **CONFIG))
    return subprocess.Popen(
        [PY, "-m", "tests.faults.driver", cfg, "loop"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=python_env(),
    )


def _settled(database: Path, tasks: int) -> bool:
    busy = count(
        database, "SELECT COUNT(*) FROM agent_crashes WHERE fix_state IN ('pending', 'claimed')"
    )
    gave_up = count(database, "SELECT COUNT(*) FROM ohm_respawn_state WHERE given_up=1")
    return busy == 0 and gave_up == tasks


def test_sigkill_mid_cycle_twenty_times(
    orch: Orchestrator, ohm: MonitorFactory, data_dir: Path
) -> None:
    rng = random.Random(SEED)
    database = data_dir / "orchestrator.db"
    agents: list[Agent] = []
    for round_ in range(KILLS):
        agents.append(orch.start("code_developer", f"impl-{round_:02d}"))
        mon = _monitor_process(data_dir)
        try:
            assert mon.stdout is not None
            assert mon.stdout.readline().startswith("cycle")  # it is at work
            for a in agents:
                if a.alive() and rng.random() < 0.6:
                    a.crash()  # crashes land while it works
            time.sleep(rng.uniform(0.0, 0.3))  # a random point of some cycle
            mon.send_signal(signal.SIGKILL)
            mon.wait(timeout=10)
        finally:
            if mon.poll() is None:
                mon.kill()
                mon.wait()
            if mon.stdout is not None:
                mon.stdout.close()
    for a in agents:
        if a.alive():
            a.crash()
    # The killed monitors did real work between kills (crashes, respawns), so the
    # kills interrupted it at many points.
    assert count(database, "SELECT COUNT(*) FROM agent_crashes") > KILLS // 2
    assert count(database, "SELECT COUNT(*) FROM ohm_respawns WHERE ok=1") > KILLS // 2

    # A monitor that is left alone settles everything.
    final = ohm(**CONFIG)

    def cycle() -> bool:
        report = final.check()
        final.auto_fix_issues(report)
        final.report_bugs_if_any(report)
        return _settled(database, len(agents))

    wait_until(cycle, timeout=30, interval=0.05, message="everything settled after the kills")

    with db(database) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    keys = [k for (k,) in q(database, "SELECT agent_key FROM agent_crashes")]
    runs = {a.key for a in agents} | {k for (k,) in q(database, "SELECT agent_key FROM ohm_agents")}
    assert len(keys) == len(set(keys))  # no crash recorded twice
    assert set(keys) == runs  # and none lost: every run that died is on record
    # No crash was respawned twice, whatever the kill interrupted.
    per_crash = q(
        database,
        "SELECT crash_id, COUNT(*) FROM ohm_respawns WHERE ok=1 "
        "GROUP BY crash_id HAVING COUNT(*) > 1",
    )
    assert per_crash == []
    per_run = q(
        database,
        "SELECT respawn_of, COUNT(*) FROM ohm_agents GROUP BY respawn_of HAVING COUNT(*) > 1",
    )
    assert per_run == []
    # Respawn counts: each task ran exactly MAX_ATTEMPTS respawns, each recorded.
    for task, attempts, given_up in q(
        database, "SELECT task_key, attempts, given_up FROM ohm_respawn_state"
    ):
        ok = count(database, "SELECT COUNT(*) FROM ohm_respawns WHERE task_key=? AND ok=1", (task,))
        spawned = count(
            database, "SELECT COUNT(*) FROM ohm_agents WHERE task_id=?", (task.split(":", 1)[1],)
        )
        assert (attempts, given_up, ok, spawned) == (MAX_ATTEMPTS, 1, MAX_ATTEMPTS, MAX_ATTEMPTS)
    doc = json.loads(orch.state_path.read_text())
    assert isinstance(doc["active_agents"], dict)  # the state file survived every kill


def _agent_started_by(mon: subprocess.Popen[str]) -> bool:
    """An agent (a grandchild, under one of its runners) has just been started."""
    try:
        return any(
            r.children() for r in psutil.Process(mon.pid).children() if r.name() == "ohm-runner"
        )
    except psutil.Error:
        return False


def _respawned_runs(cwd: Path) -> list[psutil.Process]:
    """This test's respawned runs at work: ``sleep 600`` under an ohm runner, orphaned
    ones too (ohm does not know those: only their working directory tells)."""
    found = []
    for p in psutil.process_iter(["cmdline", "ppid", "cwd"]):
        try:
            if (
                p.info["cmdline"] == ["sleep", "600"]
                and p.info["cwd"] == str(cwd)
                and psutil.Process(p.info["ppid"]).name() == "ohm-runner"
            ):
                found.append(p)
        except psutil.Error:
            continue
    return found


def _recorded_by(database: Path) -> bool:
    return count(database, "SELECT COUNT(*) FROM ohm_agents") > 0


def test_sigkill_after_the_new_run_started_before_ohm_recorded_it(
    orch: Orchestrator, ohm: MonitorFactory, data_dir: Path, tmp_path: Path
) -> None:
    """The narrowest window, hit on purpose: the runner has started the new run, but
    ohm has not written it down yet. To stop ohm exactly there, the test holds the
    database's write lock (another writer, as in the locked-database case) from the
    moment ohm claimed the crash; ohm then waits at its first write after the spawn,
    and is killed there. The next monitor must adopt that run, not start a second."""
    database = data_dir / "orchestrator.db"
    agent = orch.start("code_developer", "impl-x", argv=crash_once_argv())
    mon = _monitor_process(data_dir)
    blocker = None
    try:
        assert mon.stdout is not None and mon.stdout.readline().startswith("cycle")
        wait_until(lambda: count(database, "SELECT COUNT(*) FROM ohm_seen") > 0, timeout=10)
        agent.crash()
        claimed = "SELECT COUNT(*) FROM agent_crashes WHERE fix_state='claimed'"
        wait_until(lambda: count(database, claimed) == 1, timeout=10, interval=0.0002)
        blocker = sqlite3.connect(database, timeout=10, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        if count(database, "SELECT COUNT(*) FROM ohm_agents"):
            pytest.skip("ohm recorded the run before the lock was taken; window missed")
        wait_until(lambda: _agent_started_by(mon), timeout=10, message="new run started")
        mon.send_signal(signal.SIGKILL)
        mon.wait(timeout=10)
    finally:
        if blocker is not None:
            blocker.execute("ROLLBACK")
            blocker.close()
        if mon.poll() is None:
            mon.kill()
            mon.wait()
        if mon.stdout is not None:
            mon.stdout.close()
    assert count(database, "SELECT COUNT(*) FROM ohm_agents") == 0  # killed before recording

    final = ohm(**CONFIG)

    def settled() -> bool:
        report = final.check()
        final.auto_fix_issues(report)
        busy = count(
            database,
            "SELECT COUNT(*) FROM agent_crashes WHERE fix_state IN ('pending', 'claimed')",
        )
        return busy == 0

    wait_until(settled, timeout=20, interval=0.05, message="settled after the kill")
    for _ in range(5):  # and it stays so
        final.auto_fix_issues(final.check())
    ((crash_id,),) = q(
        database, "SELECT crash_id FROM agent_crashes WHERE agent_key=?", (agent.key,)
    )
    assert count(database, "SELECT COUNT(*) FROM ohm_agents WHERE respawn_of=?", (agent.key,)) == 1
    sql = "SELECT COUNT(*) FROM ohm_respawns WHERE crash_id=? AND ok=1"
    assert count(database, sql, (crash_id,)) == 1
    assert q(database, "SELECT attempts FROM ohm_respawn_state") == [(1,)]
    runs = _respawned_runs(tmp_path)
    try:
        assert len(runs) == 1  # one run of the task at work, not two
    finally:
        for p in runs:  # an orphan ohm did not adopt would outlive the test
            with contextlib.suppress(psutil.Error):
                p.kill()
