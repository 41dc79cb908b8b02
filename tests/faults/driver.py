"""A monitor in its own process, for faults that need one: another user's view of a
file (capabilities dropped), or a SIGKILL at a random point of a cycle.

Usage: ``python -m tests.faults.driver CONFIG_JSON MODE``

- ``steps``: one line on stdin = one cycle (check, fixes, bugs; only the check
  for the line ``check``); one JSON line back with the status, the issues and
  the agents as the console would show them.
- ``loop``: cycles as fast as it can forever, printing ``cycle N`` as each one
  starts, until killed.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from ohm_tui import OrchestratorHealthMonitor


def summary(mon: OrchestratorHealthMonitor, fix: bool = True) -> dict[str, Any]:
    report = mon.check()
    if fix:
        mon.auto_fix_issues(report)
        mon.report_bugs_if_any(report)
    snap = mon.snapshot()
    return {
        "status": report.status,
        "issues": [[i.type, i.error] for i in report.issues],
        "agents": [[a.key, a.pid, a.status] for a in snap.agents],
        "errors": snap.errors,
    }


def main(argv: list[str]) -> int:
    config = json.loads(argv[0])
    mode = argv[1]
    mon = OrchestratorHealthMonitor(config, name=f"driver-{mode}")
    if mode == "steps":
        for line in sys.stdin:
            if line.strip() == "quit":
                break
            print(json.dumps(summary(mon, fix=line.strip() != "check")), flush=True)
    elif mode == "loop":
        n = 0
        while True:
            n += 1
            print(f"cycle {n}", flush=True)
            report = mon.check()
            mon.auto_fix_issues(report)
            mon.report_bugs_if_any(report)
    mon.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
