"""A stand-in orchestrator that churns: agent runs start, crash, complete and go
stale, at a steady rate, for the endurance run (``bench/b_endure.py``) and the
suite's shorter version (``tests/functional/test_endurance.py``).

Usage: ``churn.py --data-dir DIR --runs N --rate R [--seed S] [--linger SECONDS]``

Every run is a real ``/bin/sh`` process with its output in
``logs/<type>-<task>-<pid>.log``, listed in ``orchestrator/agent_state.json`` in the
real format (``command`` one string, ``started_at`` naive local ISO). The file is
shared with ohm through the same protocol as the real one's successors and ohm's
write-back: exclusive ``flock`` on a ``.lock`` sidecar, re-read, change only our own
entries, temp file, ``os.replace``. ohm's edits (a respawned run it added, a crashed
run it moved to ``completed_agents``) are kept.

Each run blocks on its stdin (a pipe from us) and acts when we close it, so the
run's life is ours to time. Runs ohm respawns get ``/dev/null`` as stdin and act at
once. The mix, per 50 runs:

- 14 ``crash``: a traceback, exit 1; its task is one of ``LOOP_TASKS``, so ohm's
  respawns crash too until it gives up on the task (later crashes are recorded only);
- 1 ``crash-once``: a traceback, exit 1, a task of its own; ohm's respawn works a
  second and exits 0;
- 20 ``complete``: exit 0, moved to ``completed_agents`` at once, as a careful
  orchestrator does;
- 15 ``stale``: exit 0, left listed as ``running`` (the real one's habit).

Any entry whose process is gone (ours, or one ohm added) is moved to
``completed_agents`` as ``completed`` with no exit code ``--linger`` seconds after
we saw it gone: the real cleanup, which hides crashes in the file. Only the last
100 completed entries are kept.

Progress on stdout, one JSON line per 1,000 runs: ``{"runs": N, "t": epoch}``; at
the end ``{"done": true, "runs": N, "crashes": [agent keys], "elapsed": s}``. Stdlib
only: a foreign program to ohm.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import random
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

TRACEBACK = (
    'printf "%s\\n" "working on the task" "Traceback (most recent call last):" '
    '"  File \\"/srv/proj/agents/worker.py\\", line 12, in <module>" "    run()" '
    '"  File \\"/srv/proj/agents/worker.py\\", line 8, in run" "    step()" '
    '"RuntimeError: upstream API returned 500"; exit 1'
)
# ``read`` returns at EOF: when we close the pipe, or at once on /dev/null (a respawn).
SCRIPTS = {
    "crash": f"read _l; {TRACEBACK}",
    "crash-once": f"if [ -p /dev/stdin ]; then read _l; {TRACEBACK}; else sleep 1; exit 0; fi",
    "complete": 'read _l; echo "done"; exit 0',
    "stale": 'read _l; echo "done"; exit 0',
}
MIX = ["crash"] * 14 + ["crash-once"] + ["complete"] * 20 + ["stale"] * 15
LOOP_TASKS = 10
KEEP_COMPLETED = 100
LIFE = (0.2, 0.8)  # seconds a run works before it acts
CRASHES = ("crash", "crash-once")


@dataclass
class Run:
    popen: subprocess.Popen[bytes]
    kind: str
    started: float
    ends: float
    entry: dict[str, Any]

    @property
    def key(self) -> str:
        return f"{self.popen.pid}@{int(self.started)}"


def gone(pid: int, started_at: str | None) -> bool:
    """Whether the entry's process is gone: no such pid, a zombie, or a younger process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return True
    fields = data[data.rfind(b")") + 2 :].split()
    if fields[0] == b"Z":
        return True
    if started_at:
        with contextlib.suppress(ValueError, OSError):
            boot = _boot_time()
            start = boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")
            return abs(start - datetime.fromisoformat(started_at).timestamp()) > 5
    return False


_BOOT: list[float] = []


def _boot_time() -> float:
    if not _BOOT:
        with open("/proc/stat") as f:
            for line in f:
                if line.startswith("btime"):
                    _BOOT.append(float(line.split()[1]))
    return _BOOT[0]


class Churn:
    def __init__(self, data_dir: str, seed: int, linger: float) -> None:
        self.data_dir = os.path.abspath(data_dir)
        self.state_path = os.path.join(self.data_dir, "orchestrator", "agent_state.json")
        self.log_dir = os.path.join(self.data_dir, "logs")
        os.makedirs(os.path.dirname(self.state_path), exist_ok=True)
        os.makedirs(self.log_dir, exist_ok=True)
        self.rng = random.Random(seed)
        self.linger = linger
        self.live: list[Run] = []
        self.new_entries: dict[str, dict[str, Any]] = {}  # to list at the next write
        self.gone_since: dict[str, float] = {}  # listed entry -> when we saw it gone
        self.crashes: list[str] = []
        self.n = 0

    def spawn(self) -> None:
        kind = MIX[self.n % len(MIX)]
        i = self.n
        self.n += 1
        agent_type, task = "code_developer", f"impl-{i}"
        if kind == "crash":
            task = f"loop-{i % LOOP_TASKS}"
        elif kind == "crash-once":
            task = f"once-{i}"
        argv = ["/bin/sh", "-c", SCRIPTS[kind], f"churn-{kind}"]
        pending = os.path.join(self.log_dir, f"pending-{i}.log")
        with open(pending, "ab") as fh:
            p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=fh, stderr=subprocess.STDOUT)
        started = time.time()
        os.rename(pending, os.path.join(self.log_dir, f"{agent_type}-{task}-{p.pid}.log"))
        entry = {
            "pid": p.pid,
            "agent_type": agent_type,
            "task_id": task,
            "task_type": "implementation",
            "priority_number": 1,
            "command": shlex.join(argv),
            "started_at": datetime.fromtimestamp(started).isoformat(),
            "status": "running",
        }
        run = Run(p, kind, started, started + self.rng.uniform(*LIFE), entry)
        self.live.append(run)
        self.new_entries[str(p.pid)] = entry

    def tick(self, now: float) -> list[str]:
        """Release runs whose time is up, reap the ones that ended; pids to drop now."""
        drop: list[str] = []
        still: list[Run] = []
        for run in self.live:
            if run.ends <= now and run.popen.stdin is not None and not run.popen.stdin.closed:
                run.popen.stdin.close()
            if run.popen.poll() is None:
                still.append(run)
                continue
            if run.kind in CRASHES:
                self.crashes.append(run.key)
            if run.kind == "complete":
                drop.append(str(run.popen.pid))
        self.live = still
        return drop

    def write(self, now: float, drop: list[str]) -> None:
        lock = os.open(self.state_path + ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
            doc: dict[str, Any] = {"active_agents": {}, "completed_agents": []}
            with contextlib.suppress(OSError, ValueError), open(self.state_path) as f:
                doc = json.load(f)
            active = doc.get("active_agents")
            active = active if isinstance(active, dict) else {}
            completed = doc.get("completed_agents")
            completed = completed if isinstance(completed, list) else []
            active.update(self.new_entries)
            self.new_entries = {}
            stamp = datetime.fromtimestamp(now).isoformat()
            for key, entry in list(active.items()):
                if not isinstance(entry, dict):
                    continue
                if key in drop:
                    since = now
                elif entry.get("status") != "running":
                    continue
                elif gone(int(entry.get("pid") or 0), entry.get("started_at")):
                    since = self.gone_since.setdefault(key, now)
                else:
                    self.gone_since.pop(key, None)
                    continue
                if key in drop or now - since >= self.linger:
                    entry = dict(active.pop(key))
                    entry.update(status="completed", completed_at=stamp)
                    completed.append(entry)
                    self.gone_since.pop(key, None)
            self.gone_since = {k: v for k, v in self.gone_since.items() if k in active}
            doc["active_agents"] = active
            doc["completed_agents"] = completed[-KEEP_COMPLETED:]
            tmp = f"{self.state_path}.{os.getpid()}.tmp"
            with open(tmp, "w") as f:
                json.dump(doc, f)
            os.chmod(tmp, 0o644)
            os.replace(tmp, self.state_path)
        finally:
            os.close(lock)

    def finish(self) -> None:
        """Let every run act, then list nothing of ours as running."""
        deadline = time.time() + 15
        while self.live and time.time() < deadline:
            for run in self.live:
                run.ends = 0.0
            self.write(time.time(), self.tick(time.time()))
            time.sleep(0.05)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--runs", type=int, required=True)
    ap.add_argument("--rate", type=float, default=50.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--linger", type=float, default=6.0)
    args = ap.parse_args()
    churn = Churn(args.data_dir, args.seed, args.linger)
    churn.write(time.time(), [])
    print(json.dumps({"ready": True, "pid": os.getpid()}), flush=True)
    t0 = time.time()
    last_write = 0.0
    while churn.n < args.runs or churn.live:
        now = time.time()
        due = min(args.runs, int((now - t0) * args.rate) + 1)
        spawned = churn.n < due
        while churn.n < due:
            churn.spawn()
            if churn.n % 1000 == 0:
                print(json.dumps({"runs": churn.n, "t": time.time()}), flush=True)
        drop = churn.tick(now)
        if spawned or drop or now - last_write >= 0.2:
            churn.write(now, drop)
            last_write = now
        time.sleep(0.01)
    churn.finish()
    elapsed = time.time() - t0
    # The dead entries we still list: cleaned up after the linger, as ohm looks on.
    end = time.time() + args.linger + 1
    while time.time() < end:
        churn.write(time.time(), [])
        time.sleep(0.2)
    print(
        json.dumps({"done": True, "runs": churn.n, "crashes": churn.crashes, "elapsed": elapsed}),
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
