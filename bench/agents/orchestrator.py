"""A stand-in orchestrator for the benchmark: it spawns agents that are NOT ohm's
children and lists them in ``agent_state.json`` in the real format.

Usage: ``orchestrator.py start --data-dir DIR``, then one JSON request per line on
stdin, one JSON reply per line on stdout:

- ``{"op": "spawn", "agent_type": T, "task_id": K, "argv": [...]}``
  -> ``{"pid": P, "started_at": S}``
- ``{"op": "spawn_many", "n": N, "agent_type": T, "argv": [...]}`` -> ``{"pids": [...]}``
- ``{"op": "quit"}`` (or EOF on stdin): SIGKILL every agent still running, reap, exit.

Like the real one it writes ``command`` as one string, ``started_at`` as naive local
ISO, sends each agent's output to ``logs/<type>-<task>-<pid>.log``, and shares the
state file through a ``.lock`` sidecar (flock), temp file and ``os.replace``. Dead
agents are reaped at once (no zombies) and left listed as running, as the real
one left them. Stdlib only: it is a foreign program to ohm.
"""

import contextlib
import fcntl
import json
import os
import shlex
import signal
import sys
import threading
import time
from datetime import datetime
from typing import Any


class Orchestrator:
    def __init__(self, data_dir: str) -> None:
        self.data_dir = os.path.abspath(data_dir)
        self.state_path = os.path.join(self.data_dir, "orchestrator", "agent_state.json")
        self.log_dir = os.path.join(self.data_dir, "logs")
        os.makedirs(os.path.dirname(self.state_path), exist_ok=True)
        os.makedirs(self.log_dir, exist_ok=True)
        self.active: dict[str, dict[str, Any]] = {}
        self.live: set[int] = set()
        self.lock = threading.Lock()
        self.child = threading.Condition(self.lock)
        self.devnull = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        threading.Thread(target=self.reap, daemon=True).start()

    def reap(self) -> None:
        while True:
            with self.child:
                while not self.live:
                    self.child.wait()
            try:
                pid, _ = os.waitpid(-1, 0)
            except ChildProcessError:
                continue
            with self.lock:
                self.live.discard(pid)

    def spawn(self, agent_type: str, task_id: str, argv: list[str]) -> dict[str, Any]:
        pending = os.path.join(self.log_dir, f"{agent_type}-{task_id}-pending-{time.time_ns()}.log")
        fd = os.open(pending, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
        started = time.time()
        try:
            with self.lock:
                pid = os.posix_spawnp(
                    argv[0],
                    argv,
                    dict(os.environ),
                    file_actions=[
                        (os.POSIX_SPAWN_DUP2, self.devnull, 0),
                        (os.POSIX_SPAWN_DUP2, fd, 1),
                        (os.POSIX_SPAWN_DUP2, fd, 2),
                    ],
                )
                self.live.add(pid)
                self.child.notify()
        finally:
            os.close(fd)
        os.rename(pending, os.path.join(self.log_dir, f"{agent_type}-{task_id}-{pid}.log"))
        self.active[str(pid)] = {
            "pid": pid,
            "agent_type": agent_type,
            "task_id": task_id,
            "task_type": "bench",
            "priority_number": 1,
            "command": shlex.join(argv),
            "started_at": datetime.fromtimestamp(started).isoformat(),
            "status": "running",
        }
        return {"pid": pid, "started_at": started}

    def write_state(self) -> None:
        lock = os.open(self.state_path + ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
            doc: dict[str, Any] = {"active_agents": {}, "completed_agents": []}
            try:
                with open(self.state_path) as f:
                    doc = json.load(f)
            except (OSError, ValueError):
                pass
            active = doc.get("active_agents")
            if not isinstance(active, dict):
                active = {}
            active.update(self.active)  # keep what others (ohm) wrote back
            doc["active_agents"] = active
            doc.setdefault("completed_agents", [])
            tmp = f"{self.state_path}.{os.getpid()}.tmp"
            with open(tmp, "w") as f:
                json.dump(doc, f)
            os.chmod(tmp, 0o644)
            os.replace(tmp, self.state_path)
        finally:
            os.close(lock)

    def quit(self) -> None:
        with self.lock:
            victims = list(self.live)
        for pid in victims:  # our unreaped children: their pids cannot have been reused
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with self.lock:
                if not self.live:
                    return
            time.sleep(0.01)


def main() -> int:
    if len(sys.argv) != 4 or sys.argv[1] != "start" or sys.argv[2] != "--data-dir":
        sys.stderr.write("usage: orchestrator.py start --data-dir DIR\n")
        return 2
    orch = Orchestrator(sys.argv[3])
    orch.write_state()
    print(json.dumps({"ready": True, "pid": os.getpid()}), flush=True)
    try:
        for line in sys.stdin:
            req = json.loads(line)
            op = req.get("op")
            if op == "spawn":
                reply = orch.spawn(req["agent_type"], req["task_id"], req["argv"])
                orch.write_state()
            elif op == "spawn_many":
                pids = [
                    orch.spawn(req["agent_type"], f"{req['agent_type']}-{i}", req["argv"])["pid"]
                    for i in range(int(req["n"]))
                ]
                orch.write_state()
                reply = {"pids": pids}
            elif op == "quit":
                break
            else:
                reply = {"error": f"unknown op {op!r}"}
            print(json.dumps(reply), flush=True)
    finally:
        orch.quit()
    return 0


if __name__ == "__main__":
    sys.exit(main())
