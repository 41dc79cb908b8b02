"""The orchestrator rewrites ``agent_state.json`` while ohm cleans it: 1,000 rounds.

The orchestrator (a real process) adds one entry per round with a read-modify-
write of the whole file, and archives what ohm moved to ``completed_agents``
(the real one kept that list short). ohm, in this process, runs full cycles as
fast as it can; every entry is for a dead agent, so every ohm cycle rewrites the
file too. At every round the orchestrator checks that each entry it added is
still active, or completed exactly once: not one may be lost or duplicated. A
reader thread checks that nobody ever sees an invalid file. Both with an
orchestrator that takes ohm's sidecar lock and with one that knows nothing of it.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.faults.kit import PY, MonitorFactory, Orchestrator, python_env

ROUNDS = 1000
BASE_PID = 2_000_000_000  # above any pid_max: dead agents, every one of them

ORCHESTRATOR = """\
import datetime, fcntl, json, os, sys, time
path, rounds, locking, base = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "lock", int(sys.argv[4])
lock_path = path + ".lock"
lost, archived, twice = set(), set(), set()
for i in range(rounds):
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644) if locking else -1
    if locking:
        fcntl.flock(fd, fcntl.LOCK_EX)  # the same sidecar lock ohm takes
    with open(path) as fh:
        doc = json.load(fh)
    active = set(doc["active_agents"])
    done = [str(e["pid"]) for e in doc["completed_agents"]]
    twice |= {k for k in done if done.count(k) > 1 or k in active or k in archived}
    # Like the real one, it keeps completed_agents short: finished runs are archived.
    archived |= set(done)
    doc["completed_agents"] = []
    lost |= {str(base + j) for j in range(i)} - active - archived
    pid = base + i
    doc["active_agents"][str(pid)] = {
        "pid": pid, "agent_type": "code_developer", "task_id": f"impl-{i}",
        "command": f"poetry run code-developer --task impl-{i}",
        "started_at": datetime.datetime.now().isoformat(), "status": "running"}
    tmp = f"{path}.orch.tmp"
    with open(tmp, "w") as fh:
        fh.write(json.dumps(doc))
    os.replace(tmp, path)  # atomic, as a careful orchestrator writes
    if locking:
        os.close(fd)
    time.sleep(0.001 if locking else 0.004)  # its loop does other work between writes
print(json.dumps({"lost": sorted(lost), "twice": sorted(twice), "archived": sorted(archived)}))
"""


@pytest.mark.parametrize("locking", ["lock", "no_lock"])
def test_thousand_rounds_of_concurrent_writes_lose_nothing(
    locking: str, orch: Orchestrator, ohm: MonitorFactory
) -> None:
    path = orch.state_path
    orch.write({"active_agents": {}, "completed_agents": []})
    mon = ohm(health_check_interval=0.05)
    stop = threading.Event()
    invalid: list[str] = []
    cycles = 0
    errors: list[BaseException] = []

    def ohm_loop() -> None:
        nonlocal cycles
        try:
            while not stop.is_set():
                report = mon.check()
                mon.auto_fix_issues(report)
                cycles += 1
        except BaseException as exc:  # surfaced below: the monitor must not raise
            errors.append(exc)

    def reader() -> None:
        while not stop.is_set():
            try:
                doc = json.loads(path.read_bytes())
                if not isinstance(doc.get("active_agents"), dict):
                    invalid.append("active_agents is not an object")
            except ValueError as exc:
                invalid.append(str(exc))
            except FileNotFoundError:
                invalid.append("file missing")
            time.sleep(0.0005)  # leave the GIL to ohm's thread now and then

    threads = [threading.Thread(target=ohm_loop), threading.Thread(target=reader)]
    for t in threads:
        t.start()
    try:
        out = subprocess.run(
            [PY, "-c", ORCHESTRATOR, str(path), str(ROUNDS), locking, str(BASE_PID)],
            capture_output=True,
            text=True,
            timeout=60,
            env=python_env(),
        )
        # A few more ohm cycles after the last round: it cleans the rest.
        target = cycles + 3
        deadline = time.monotonic() + 10
        while cycles < target and time.monotonic() < deadline and not errors:
            time.sleep(0.01)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
    assert out.returncode == 0, out.stderr[-2000:]
    assert not errors, errors
    result = json.loads(out.stdout)
    assert result["lost"] == []  # never missing, at any round
    assert result["twice"] == []  # never duplicated either
    assert invalid == []
    assert cycles > 20  # ohm really worked alongside (and wrote the file many times)

    doc = json.loads(path.read_text())
    active = {int(k) for k in doc["active_agents"]}
    completed = [int(e["pid"]) for e in doc["completed_agents"]]
    archived = {int(k) for k in result["archived"]}
    assert len(completed) == len(set(completed))
    assert not active & set(completed) and not archived & (active | set(completed))
    assert active | set(completed) | archived == set(range(BASE_PID, BASE_PID + ROUNDS))
    # ohm did clean, concurrently, many times (a writer that does not lock and
    # rewrites the file every few ms wins most races, so fewer there).
    assert len(archived) > (ROUNDS // 2 if locking == "lock" else 50)
    for e in doc["completed_agents"]:
        assert e["status"] == "completed" and e["completed_at"]
        assert e["reason"].startswith("cleaned by ohm")
    leftovers = [p for p in Path(path).parent.iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []  # no temp file left behind either
