"""A fake era-1 orchestrator that writes ``agent_state.json`` the way the real one did.

Run as ``python -m tests.faults.era1 <data_dir> <tag> orchestrator start``; the test
drives it with one JSON command per line on stdin and reads one JSON reply per line:

- ``{"op": "spawn", "agent_type": ..., "task_id": ..., "argv": [...]}``: first polls
  every earlier child (the only moment the real loop reaped: when it next started a
  process), then starts the agent as its direct child with stdout/stderr on pipes
  nobody reads, and rewrites the file. Replies ``{"pid": N}``.
- ``{"op": "release", "pid": N}``: closes that agent's stdin (kit agents then crash).
- ``{"op": "cleanup"}``: the dashboard's cleanup: entries whose PID is gone
  (``kill(pid, 0)`` fails; a zombie still exists) become ``completed`` with no
  ``exit_code`` and move to ``completed_agents``.
- ``{"op": "write"}``: rewrite the file from memory (entries ohm moved come back).
- ``{"op": "quit"}``.

Writes are in place: ``open(path, "w")`` + ``json.dump``, no lock, no temp file.
Times are naive local ISO. Stdlib only.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any


def _now_iso() -> str:
    return datetime.now().isoformat()


class Era1:
    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / "orchestrator" / "agent_state.json"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.active: dict[str, dict[str, Any]] = {}
        self.completed: list[dict[str, Any]] = []
        self.children: dict[int, subprocess.Popen[bytes]] = {}

    def write(self) -> None:
        with open(self.path, "w") as fh:  # truncates first: readers can see it half-written
            json.dump({"active_agents": self.active, "completed_agents": self.completed}, fh)

    def spawn(self, agent_type: str, task_id: str, argv: list[str]) -> int:
        for child in self.children.values():
            child.poll()  # reaps the exited ones, as the real loop did at its next spawn
        popen = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        self.children[popen.pid] = popen
        self.active[str(popen.pid)] = {
            "pid": popen.pid,
            "agent_type": agent_type,
            "task_id": task_id,
            "task_type": "implementation",
            "priority_number": 1,
            "command": " ".join(shlex.quote(a) for a in argv),
            "started_at": _now_iso(),
            "status": "running",
        }
        self.write()
        return popen.pid

    def cleanup(self) -> list[int]:
        moved = []
        for key, entry in list(self.active.items()):
            try:
                os.kill(int(entry["pid"]), 0)
                continue
            except ProcessLookupError:
                pass
            except PermissionError:
                continue
            if entry.get("status") != "killed":
                entry = {k: v for k, v in entry.items() if k != "exit_code"}
            entry = dict(entry, status="completed", completed_at=_now_iso())
            self.completed = [*self.completed, entry][-100:]
            del self.active[key]
            moved.append(int(key))
        self.write()
        return moved

    def release(self, pid: int) -> None:
        child = self.children.get(pid)
        if child is not None and child.stdin is not None:
            child.stdin.close()


def main() -> None:
    orch = Era1(Path(sys.argv[1]))
    orch.write()
    print(json.dumps({"ready": os.getpid()}), flush=True)
    for line in sys.stdin:
        cmd = json.loads(line)
        op = cmd["op"]
        reply: dict[str, Any] = {"ok": True}
        if op == "spawn":
            reply["pid"] = orch.spawn(cmd["agent_type"], cmd["task_id"], cmd["argv"])
        elif op == "release":
            orch.release(int(cmd["pid"]))
        elif op == "cleanup":
            reply["moved"] = orch.cleanup()
        elif op == "write":
            orch.write()
        elif op == "quit":
            break
        print(json.dumps(reply), flush=True)
    for child in orch.children.values():
        if child.poll() is None:
            child.kill()
        child.wait()


if __name__ == "__main__":
    main()
