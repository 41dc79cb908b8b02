"""Each issue id once in a report: a task that crashed, was run again and crashed again
is one issue (the newest crash, with how many there were), for the CLI and the console."""

from __future__ import annotations

import json
import subprocess
from collections import Counter

from tests.faults.kit import PY, MonitorFactory, Orchestrator, crash_argv, python_env


def test_a_task_that_crashed_twice_is_one_issue(ohm: MonitorFactory, orch: Orchestrator) -> None:
    runs = [orch.start("architect", "spec-22", argv=crash_argv()) for _ in range(2)]
    for run in runs:
        assert run.crash() == 1
    mon = ohm(auto_fix=False)
    report = mon.check()
    ids = [i.issue_id for i in report.issues]
    assert ids.count("agent_crash:task:spec-22") == 1, ids
    (issue,) = [i for i in report.issues if i.issue_id == "agent_crash:task:spec-22"]
    assert issue.details["occurrences"] == 2
    assert issue.agent_pid == runs[-1].pid  # the newest crash is the one shown

    out = subprocess.run(
        [PY, "-m", "ohm_tui", "check", "--data-dir", str(orch.data_dir), "--json"],
        capture_output=True,
        text=True,
        env=python_env(),
        timeout=60,
    )
    assert out.returncode in (0, 1, 2), out.stderr
    listed = [i["issue_id"] for i in json.loads(out.stdout)["issues"]]
    assert not [k for k, n in Counter(listed).items() if n > 1], listed
    assert listed.count("agent_crash:task:spec-22") == 1
    assert sorted(listed) == sorted(i.issue_id for i in mon.snapshot(record=False).report.issues)
