"""A long-running monitor does not grow: every per-run cache holds at most the runs
listed now, whatever number of runs came and went before.

Thousands of real runs (``sleep`` processes in the orchestrator's real
``agent_state.json`` format, with their logs) are listed a hundred at a time and
then end; after that, every dict and set the engine keeps is measured, not just
the ones known today: a new cache that forgets to forget fails here.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ohm_tui.engine import timeutil
from ohm_tui.engine.monitor import OrchestratorHealthMonitor

LISTED = 100  # runs listed at a time
ROUNDS = 25  # 2,500 runs in all
DIE_LISTED = 10  # of them, dead when the check looks (a crash each)
SLACK = 8  # a handful of entries that are not per run (sources, directories)


def _write_state(path: Path, runs: list[tuple[subprocess.Popen[bytes], int, float]]) -> None:
    active = {
        str(p.pid): {
            "pid": p.pid,
            "agent_type": "worker",
            "task_id": f"task-{n}",
            "command": shlex.join(["sleep", "600"]),
            "started_at": timeutil.iso_local_naive(started),
            "status": "running",
        }
        for p, n, started in runs
    }
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"active_agents": active, "completed_agents": []}))
    tmp.replace(path)


def _containers(obj: object, seen: set[int], path: str = "monitor") -> Iterator[tuple[str, int]]:
    """Every dict / set / list reachable through the engine's own objects' attributes."""
    if id(obj) in seen:
        return
    seen.add(id(obj))
    attrs: dict[str, Any] = {}
    with_dict = getattr(obj, "__dict__", None)
    if isinstance(with_dict, dict):
        attrs.update(with_dict)
    for cls in type(obj).__mro__:
        for slot in getattr(cls, "__slots__", ()):
            if hasattr(obj, slot):
                attrs[slot] = getattr(obj, slot)
    for name, value in attrs.items():
        where = f"{path}.{name}"
        if isinstance(value, (dict, set, frozenset, list)):
            yield where, len(value)
        elif type(value).__module__.startswith("ohm_tui.engine") and not isinstance(value, type):
            yield from _containers(value, seen, where)


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_caches_stay_bounded_by_the_runs_listed_now(tmp_path: Path) -> None:
    data = tmp_path / "data"
    logs = data / "logs"
    logs.mkdir(parents=True)
    state = data / "orchestrator" / "agent_state.json"
    state.parent.mkdir()
    cfg = {
        "data_dir": str(data),
        "auto_fix": False,
        "orchestrator_match": ["no-such-orchestrator-for-this-test"],
    }
    mon = OrchestratorHealthMonitor(cfg, name="bounded")
    baseline: tuple[int, int] | None = None
    try:
        for round_no in range(ROUNDS):
            runs: list[tuple[subprocess.Popen[bytes], int, float]] = []
            for n in range(LISTED):
                log = logs / f"new-{n}.log"
                with open(log, "ab") as out:
                    started = time.time()
                    p = subprocess.Popen(["sleep", "600"], stdout=out, stderr=out)
                log.rename(logs / f"worker-task-{n}-{p.pid}.log")
                runs.append((p, n, started))
            for p, _, _ in runs[:DIE_LISTED]:  # some die while listed: crashes, counted once
                p.kill()
                p.wait()
            _write_state(state, runs)
            report = mon.check()
            assert 0 < report.active_agents <= LISTED - DIE_LISTED  # the check saw them run
            mon.snapshot()
            for p, _, _ in runs[DIE_LISTED:]:  # the run ends; its entry leaves with the next state
                p.kill()
                p.wait()
            for old in logs.iterdir():
                old.unlink()
            if round_no == 1:
                baseline = (_fds(), threading.active_count())
        _write_state(state, [])
        mon.check()
        mon.snapshot()
        sizes = sorted(_containers(mon, set()), key=lambda x: -x[1])
        too_big = [(where, n) for where, n in sizes if n > LISTED + SLACK]
        assert too_big == [], f"caches grew past the runs listed: {too_big}"
        assert baseline is not None
        fds, threads = baseline
        assert _fds() <= fds + 2
        assert threading.active_count() <= threads + 1
    finally:
        mon.close()
