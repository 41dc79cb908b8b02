"""An era-3 orchestrator for tests: ``python session_orch.py orchestrator start DIR PLAN SPEED``.

A real process whose sessions are threads (the demo's ``SessionOrchestrator``):
each registers its ``agent_lifecycle`` row with its thread identifier and runs
the shipped fake ``claude`` CLI as this process's child, recording every call
in ``claude_invocations.db``. ``PLAN`` is JSON: ``[[agent_type, task, behaviour], ...]``
with the demo's behaviours. The heartbeat is written every 0.1 s until SIGTERM.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
import time
from pathlib import Path

from ohm_tui.demo.orchestrator import PlannedAgent
from ohm_tui.demo.orchestrator_db import SessionOrchestrator


def main() -> int:
    state_dir, plan, speed = Path(sys.argv[3]), json.loads(sys.argv[4]), float(sys.argv[5])
    orch = SessionOrchestrator(
        state_dir,
        seed=1,
        speed=speed,
        max_agents=len(plan),
        freeze_every=0,
        freeze_for=0,
        session_id=None,
    )
    signal.signal(signal.SIGTERM, orch.request_stop)
    for agent_type, task, behaviour in plan:
        p = PlannedAgent(agent_type, task, behaviour, 30.0, 1)
        threading.Thread(target=orch.session, args=(p,), daemon=True).start()
    while not orch.stopping:
        orch.heartbeat({})
        time.sleep(0.1)
    orch.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
