"""A read-only monitor beside a monitor that writes (a console ``--read-only`` next to
``ohm demo``): it never writes, and a writer's busy database is no storage error."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

from ohm_tui import OrchestratorHealthMonitor
from tests.faults.kit import (
    PY,
    MonitorFactory,
    Orchestrator,
    base_config,
    count,
    crash_argv,
    python_env,
)


def test_read_only_monitor_beside_a_writer_reports_no_storage_error(
    ohm: MonitorFactory, orch: Orchestrator, data_dir: Path
) -> None:
    for i in range(4):  # each respawn crashes again: the writer writes all the time
        orch.start("architect", f"spec-{i}", argv=crash_argv())
    for agent in orch.agents:
        agent.release()
    cfg = base_config(data_dir, respawn_backoff_base=0.0, max_respawn_attempts=1000)
    writer = subprocess.Popen(
        [PY, "-m", "tests.faults.driver", json.dumps(cfg), "loop"],
        stdout=subprocess.DEVNULL,
        env=python_env(),
    )
    watcher = OrchestratorHealthMonitor(base_config(data_dir), read_only=True, name="ro")
    try:
        deadline = time.monotonic() + 20
        while count(ohm.database, "SELECT count(*) FROM agent_crashes") < 5:
            assert time.monotonic() < deadline, "the writer recorded no crashes"
            time.sleep(0.05)
        seen: list[str] = []
        checks = 0
        start = count(ohm.database, "SELECT count(*) FROM agent_crashes")
        while count(ohm.database, "SELECT count(*) FROM agent_crashes") < start + 40:
            assert time.monotonic() < deadline + 30, "the writer stopped writing"
            report = watcher.check()
            snap = watcher.snapshot()
            checks += 1
            seen += [i.error for i in report.issues if i.type == "storage_error"]
            seen += snap.errors
        assert checks > 5
        assert seen == []
        assert count(ohm.database, "SELECT count(*) FROM health_checks WHERE monitor = 'ro'") == 0
    finally:
        writer.kill()
        writer.wait(timeout=10)
        watcher.close()


def test_read_only_monitor_says_what_a_genuine_read_error_is(data_dir: Path) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "orchestrator.db").write_bytes(b"not sqlite at all " * 512)
    watcher = OrchestratorHealthMonitor(base_config(data_dir), read_only=True, name="ro")
    try:
        (issue,) = [i for i in watcher.check().issues if i.type == "storage_error"]
        assert "database is corrupt" in issue.error and "orchestrator.db" in issue.error
        errors = watcher.snapshot().errors
        assert len(errors) == 1 and "database is corrupt" in errors[0]  # said once
    finally:
        watcher.close()
