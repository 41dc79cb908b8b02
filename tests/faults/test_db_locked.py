"""The database is locked by another writer for 10 s: ohm waits and retries within
bounds, and loses no record (a crash, its respawn, a bug filed by hand meanwhile)."""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path

from ohm_tui.engine.model import BugRow
from tests.faults.kit import PY, MonitorFactory, Orchestrator, count, crash_once_argv, q
from tests.helpers import wait_until

HOLD = 10.0  # seconds the other writer keeps the lock: the case, kept as is

LOCKER = """\
import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN EXCLUSIVE")
conn.execute("INSERT INTO ohm_meta(key, value) VALUES ('locker', 'x') "
              "ON CONFLICT(key) DO UPDATE SET value='x'")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
conn.execute("COMMIT")
print("released", flush=True)
"""


def test_database_locked_ten_seconds_loses_nothing(
    orch: Orchestrator, ohm: MonitorFactory, data_dir: Path
) -> None:
    database = data_dir / "orchestrator.db"
    agent = orch.start("architect", "spec-20", argv=crash_once_argv())
    mon = ohm(health_check_interval=0.2)
    mon.start()
    wait_until(lambda: count(database, "SELECT COUNT(*) FROM ohm_seen") == 1, timeout=10)

    locker = subprocess.Popen(
        [PY, "-c", LOCKER, str(database), str(HOLD)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert locker.stdout is not None and locker.stdout.readline().strip() == "locked"
        locked_at = time.monotonic()
        agent.crash()
        filed: list[BugRow] = []
        errors: list[BaseException] = []

        def by_hand() -> None:
            try:
                filed.append(mon.file_bug("Filed while the database was locked", "Low"))
            except BaseException as exc:
                errors.append(exc)

        hand = threading.Thread(target=by_hand)
        hand.start()
        # Readers are not blocked (WAL): nothing is written while the lock is held.
        wait_until(lambda: locker.poll() is not None or time.monotonic() - locked_at > 1.0)
        assert count(database, "SELECT COUNT(*) FROM agent_crashes") == 0
        assert locker.stdout.readline().strip() == "released"
        released_at = time.monotonic()
        assert released_at - locked_at >= HOLD - 0.5

        wait_until(
            lambda: count(database, "SELECT COUNT(*) FROM ohm_respawns WHERE ok=1") == 1,
            timeout=10,
            message="crash recorded and respawned once the lock is gone",
        )
        hand.join(timeout=10)
        assert not errors, errors  # waited, never failed
        recorded_within = time.monotonic() - released_at
        assert recorded_within < 5.0  # bounded: it retried, it did not give up and sleep
    finally:
        locker.kill()
        locker.wait()
        if locker.stdout is not None:
            locker.stdout.close()
    mon.stop()
    assert [k for (k,) in q(database, "SELECT agent_key FROM agent_crashes")] == [agent.key]
    assert count(database, "SELECT COUNT(*) FROM ohm_events WHERE kind='crashed'") == 1
    assert count(database, "SELECT COUNT(*) FROM ohm_events WHERE kind='respawned'") == 1
    assert len(filed) == 1 and filed[0].title == "Filed while the database was locked"
    assert count(database, "SELECT COUNT(*) FROM bugs WHERE title LIKE 'Filed while%'") == 1
    assert count(database, "SELECT COUNT(*) FROM health_checks") > 0
    assert q(database, "SELECT value FROM ohm_meta WHERE key='locker'") == [("x",)]
