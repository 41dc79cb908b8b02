"""``ohm ack`` / ``ohm unack`` round trip, as real processes on a real state directory.

The orchestrator's own agent really crashed (a traceback in its log, its entry
still "running" in the real-format ``agent_state.json``); the operator
acknowledges it from the command line and ``ohm check`` follows.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from ohm_tui.engine import timeutil

CRASHING_AGENT = "print('architect starting', flush=True)\nraise RuntimeError('loader broke')\n"


def ohm(data: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "OHM_DEBUG"}
    env["COLUMNS"] = "200"
    return subprocess.run(
        [sys.executable, "-m", "ohm_tui", *argv, "--data-dir", str(data)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        stdin=subprocess.DEVNULL,
    )


def crashed_agent_dir(tmp_path: Path) -> Path:
    """A state dir whose one agent (started by "the orchestrator") crashed with a traceback."""
    data = tmp_path / "data"
    logs = data / "logs"
    logs.mkdir(parents=True)
    argv = [sys.executable, "-c", CRASHING_AGENT]
    started = time.time()
    pending = logs / "pending.log"
    with open(pending, "wb") as fh:
        proc = subprocess.Popen(argv, stdout=fh, stderr=subprocess.STDOUT)
    proc.wait(timeout=30)
    assert proc.returncode != 0
    pending.rename(logs / f"architect-spec-20-{proc.pid}.log")
    entry = {
        "pid": proc.pid,
        "agent_type": "architect",
        "task_id": "spec-20",
        "task_type": "create_spec",
        "priority_number": 20,
        "command": " ".join(argv[:2]) + " crash",
        "started_at": timeutil.iso_local_naive(started),
        "status": "running",
    }
    state = data / "orchestrator" / "agent_state.json"
    state.parent.mkdir(parents=True)
    state.write_text(json.dumps({"active_agents": {str(proc.pid): entry}, "completed_agents": []}))
    state.chmod(0o644)
    # Other orchestrators on this machine (demos, other tests) are not this one's.
    config = data / "ohm.toml"
    config.write_text('orchestrator_match = ["no-such-orchestrator-for-this-test"]\n')
    config.chmod(0o644)
    return data


def check_json(data: Path) -> tuple[int, dict[str, Any]]:
    r = ohm(data, "check", "--json")
    return r.returncode, json.loads(r.stdout)


def test_ack_round_trip_on_a_real_state_dir(tmp_path: Path) -> None:
    data = crashed_agent_dir(tmp_path)
    rc, doc = check_json(data)
    assert rc == 1 and doc["status"] == "degraded"
    (issue,) = [i for i in doc["issues"] if i["type"] == "agent_crash"]
    assert issue["issue_id"] == "agent_crash:task:spec-20" and "ack" not in issue

    listed = ohm(data, "ack")
    assert listed.returncode == 0
    assert "agent_crash:task:spec-20" in listed.stdout and "spec-20 crashed" in listed.stdout

    r = ohm(data, "ack", "agent_crash:task:spec-20", "--for", "1h", "--by", "alice")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("Acknowledged agent_crash:task:spec-20 ")
    assert "acked by alice until" in r.stdout

    rc, doc = check_json(data)
    assert rc == 0 and doc["status"] == "healthy", json.dumps(doc)[:3000]  # acked: out of status
    (issue,) = [i for i in doc["issues"] if i["type"] == "agent_crash"]  # ... never hidden
    assert issue["ack"]["by"] == "alice"
    assert issue["ack"]["until"] - issue["ack"]["acked_at"] == pytest.approx(3600)
    text = ohm(data, "check")
    assert text.returncode == 0
    assert "1 acknowledged" in text.stdout and "acked by alice until" in text.stdout

    with sqlite3.connect(data / "orchestrator.db") as conn:
        (row,) = conn.execute("SELECT acked_by, severity, ended_ts FROM ohm_acks").fetchall()
    assert row == ("alice", "degraded", None)

    r = ohm(data, "ack", "--list", "--json")
    (open_ack,) = json.loads(r.stdout)
    assert open_ack["issue_id"] == "agent_crash:task:spec-20"

    r = ohm(data, "unack", "spec-20", "--by", "alice")
    assert r.returncode == 0, r.stderr
    assert "Took back the acknowledgement of agent_crash:task:spec-20" in r.stdout
    rc, doc = check_json(data)
    assert rc == 1 and doc["status"] == "degraded"
    assert json.loads(ohm(data, "ack", "--list", "--json").stdout) == []
    (ended,) = json.loads(ohm(data, "ack", "--all", "--json").stdout)
    assert ended["end_reason"] == "taken back by alice"


def test_ack_of_nothing_is_bad_input(tmp_path: Path) -> None:
    data = crashed_agent_dir(tmp_path)
    r = ohm(data, "ack", "no-such-issue")
    assert r.returncode == 2
    assert "no current issue matches 'no-such-issue'" in r.stderr
    assert "agent_crash:task:spec-20" in r.stderr  # says what there is
    r = ohm(data, "ack", "spec-20", "--for", "banana")
    assert r.returncode == 2 and "invalid duration" in r.stderr
    r = ohm(data, "unack", "spec-20")
    assert r.returncode == 2 and "no open acknowledgement" in r.stderr
