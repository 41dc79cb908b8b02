"""Reading is not writing: listings leave the database as it was and print no alerts;
``ohm check`` adds its one row (and an event only when the status changed); ``ohm
watch`` prints each event once.

Real files throughout: a real-format ``agent_state.json`` listing a live agent and
a dead one, a database filled by a real monitor (a real crash under ohm, a bug),
and ``ohm`` run as its own process.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import psutil
import pytest

from ohm_tui.engine.monitor import OrchestratorHealthMonitor
from tests.functional.test_cli import clean_env, dead_pid, make_state_dir
from tests.helpers import wait_until


def table_counts(database: Path) -> dict[str, int]:
    """Row count of every table of the database."""
    conn = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        names = [
            str(n)
            for (n,) in conn.execute(
                "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'"
            )
        ]
        return {n: int(conn.execute(f'SELECT COUNT(*) FROM "{n}"').fetchone()[0]) for n in names}
    finally:
        conn.close()


def ohm(*argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ohm_tui", *argv],
        cwd=cwd,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


@pytest.fixture
def live_agent(tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(120)"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        cwd=tmp_path,
    )
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait()


def _entry(pid: int, started: float, task: str) -> dict[str, object]:
    return {
        "pid": pid,
        "agent_type": "architect",
        "task_id": task,
        "task_type": "create_spec",
        "command": f"{sys.executable} -c 'import time; time.sleep(120)'",
        "started_at": datetime.fromtimestamp(started).isoformat(),
        "status": "running",
    }


@pytest.fixture
def history(tmp_path: Path, live_agent: subprocess.Popen[bytes]) -> Path:
    """A data dir whose database holds checks, a crash, events and a bug, and whose
    state file lists a live agent and a dead one that no check has seen yet."""
    live_started = psutil.Process(live_agent.pid).create_time()
    data = make_state_dir(
        tmp_path,
        agents={str(live_agent.pid): _entry(live_agent.pid, live_started, "spec-7")},
    )
    # A real crash under ohm, recorded by a real monitor.
    with OrchestratorHealthMonitor(data_dir=data, name="filler") as mon:
        view = mon.simulate_crash("architect", "RuntimeError", task_id="spec-9")

        def recorded() -> bool:
            mon.check()
            return any(c.agent_pid == view.pid for c in mon.crashes())

        wait_until(recorded, timeout=15, interval=0.05)
        mon.file_bug("Spec agent hangs", "High", "found by hand")
    state = data / "orchestrator" / "agent_state.json"
    doc = json.loads(state.read_text())
    gone = dead_pid()
    doc["active_agents"][str(gone)] = _entry(gone, psutil.boot_time() + 1, "spec-8")
    state.write_text(json.dumps(doc))
    return data


READS = [
    ["agents"],
    ["agents", "--json"],
    ["crashes"],
    ["crashes", "--json"],
    ["bugs"],
    ["bugs", "--status", "all"],
    ["events"],
    ["bug", "show", "1"],
]


def test_read_commands_write_nothing_and_print_no_alerts(history: Path, tmp_path: Path) -> None:
    database = history / "orchestrator.db"
    state = history / "orchestrator" / "agent_state.json"
    exits = sorted(p.name for p in (history / "ohm" / "exits").glob("*"))
    before = table_counts(database)
    state_before = state.read_bytes()
    for argv in READS:
        result = ohm(*argv, "--data-dir", str(history), cwd=tmp_path)
        assert result.returncode == 0, (argv, result.stderr)
        assert result.stderr == "", (argv, result.stderr)  # no alert or warning lines
        assert table_counts(database) == before, argv
        assert state.read_bytes() == state_before, argv
        assert sorted(p.name for p in (history / "ohm" / "exits").glob("*")) == exits, argv
    listed = ohm("agents", "--json", "--data-dir", str(history), cwd=tmp_path)
    assert {a["task_id"] for a in json.loads(listed.stdout)} >= {"spec-7", "spec-8"}


def test_check_writes_its_row_and_an_event_only_when_the_status_changed(
    history: Path, tmp_path: Path
) -> None:
    database = history / "orchestrator.db"
    first = ohm("check", "--data-dir", str(history), cwd=tmp_path)
    assert first.returncode == 1, first.stdout + first.stderr  # degraded: the dead agent
    before = table_counts(database)
    again = ohm("check", "--data-dir", str(history), cwd=tmp_path)
    assert again.returncode == 1
    after = table_counts(database)
    assert after.pop("health_checks") == before.pop("health_checks") + 1
    assert after == before  # no status_changed event: degraded, as last time


def test_check_records_a_status_change(history: Path, tmp_path: Path) -> None:
    database = history / "orchestrator.db"
    ohm("check", "--data-dir", str(history), cwd=tmp_path)
    conn = sqlite3.connect(database)
    try:
        last = conn.execute("SELECT status FROM health_checks ORDER BY ts DESC LIMIT 1")
        assert last.fetchone()[0] == "degraded"
        conn.execute("UPDATE ohm_meta SET value='healthy' WHERE key='status'")  # as if fine
        conn.commit()
    finally:
        conn.close()
    events = table_counts(database)["ohm_events"]
    ohm("check", "--data-dir", str(history), cwd=tmp_path)
    conn = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        rows = conn.execute(
            "SELECT kind, message FROM ohm_events ORDER BY event_id DESC LIMIT 1"
        ).fetchall()
    finally:
        conn.close()
    assert table_counts(database)["ohm_events"] == events + 1
    assert rows == [("status_changed", "status degraded")]


def test_watch_prints_each_event_once(tmp_path: Path) -> None:
    data = make_state_dir(tmp_path)
    with (data / "ohm.toml").open("a") as fh:
        fh.write(
            "max_respawn_attempts = 1\ncrash_threshold_for_bug = 1\n"
            "respawn_backoff_base = 0.0\nhealth_check_interval = 0.5\n"
        )
    proc = subprocess.Popen(
        [sys.executable, "-m", "ohm_tui", "watch", "--data-dir", str(data)],
        cwd=tmp_path,
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,  # alerts would come on stderr: read both as one
        stdin=subprocess.DEVNULL,
        text=True,
    )
    lines: list[str] = []
    assert proc.stdout is not None
    stdout = proc.stdout
    reader = threading.Thread(target=lambda: lines.extend(stdout), daemon=True)
    reader.start()
    try:
        wait_until(lambda: any("ohm watch: watching" in x for x in lines), timeout=20)
        sim = ohm(
            "simulate-crash", "--agent=architect", "--error", "RuntimeError", "--task",
            "spec-5", "--data-dir", str(data), cwd=tmp_path,
        )  # fmt: skip
        assert sim.returncode == 0, sim.stderr
        wait_until(lambda: any("gave up on" in x for x in lines), timeout=30)
        wait_until(lambda: any("BUG-001 filed" in x for x in lines), timeout=30)
    finally:
        if proc.poll() is None:
            proc.terminate()
        proc.wait(timeout=20)
        reader.join(timeout=5)
    text = "".join(lines)
    assert text.count("gave up on architect spec-5") == 1, text
    assert text.count("BUG-001 filed") == 1, text
    assert "ohm: warning" not in text and "ohm: critical" not in text, text
