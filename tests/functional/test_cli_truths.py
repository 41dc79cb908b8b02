"""Small truths: what the README says of exit codes, durations that need a unit,
and counts and articles that read right ("1 crash", "an agent_crash bug")."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import tokenize
from pathlib import Path

import pytest

from ohm_tui.cli.main import main
from ohm_tui.engine import fmt, timeutil
from ohm_tui.engine.monitor import OrchestratorHealthMonitor

ROOT = Path(__file__).resolve().parents[2]

CRASHER = """\
import os, sys
logs, kind, task, error = sys.argv[1:5]
fd = os.open(os.path.join(logs, f"{kind}-{task}-{os.getpid()}.log"),
             os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
os.dup2(fd, 2)
raise getattr(__builtins__, error)(f"cannot import name 'SkillNames' ({task})")
"""


def _state_dir(root: Path) -> Path:
    data = root / "data"
    (data / "orchestrator").mkdir(parents=True)
    (data / "logs").mkdir()
    (data / "orchestrator" / "work_loop_state.json").write_text(
        json.dumps({"last_update": time.time(), "active_tasks": {}})
    )
    (data / "orchestrator" / "agent_state.json").write_text(
        json.dumps({"active_agents": {}, "completed_agents": []})
    )
    (data / "ohm.toml").write_text(f'orchestrator_match = ["ohm-test-orch-{root.name}"]\n')
    return data


def _crashed_agents(data: Path, script: Path, errors: dict[str, str]) -> None:
    """Real agents that really died of the given errors, listed as running."""
    active = {}
    for task, error in errors.items():
        argv = [sys.executable, str(script), str(data / "logs"), "architect", task, error]
        started = time.time()
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL)
        assert proc.wait(timeout=30) == 1
        active[str(proc.pid)] = {
            "pid": proc.pid,
            "agent_type": "architect",
            "task_id": task,
            "command": " ".join(argv),
            "started_at": timeutil.iso_local_naive(started),
            "status": "running",
        }
    state = {"active_agents": active, "completed_agents": []}
    (data / "orchestrator" / "agent_state.json").write_text(json.dumps(state))


def test_readme_says_what_bad_input_exits_with(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    readme = (ROOT / "README.md").read_text()
    para = readme[readme.index("Bad input") :].split("\n\n", 1)[0]
    assert "exits 2" in para and re.search(r"`ohm check` exits 3", para), para
    assert main(["crashes", "--banana"]) == 2
    assert main(["check", "--banana"]) == 3
    assert main(["check", "--data-dir", str(tmp_path / "missing")]) == 3
    capsys.readouterr()


@pytest.mark.parametrize("command", ["crashes", "events"])
def test_a_duration_without_a_unit_is_an_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, command: str
) -> None:
    data = _state_dir(tmp_path)
    rc = main([command, "--last", "24", "--data-dir", str(data)])
    out, err = capsys.readouterr()
    assert rc == 2 and out == ""
    (line,) = err.strip().splitlines()
    assert "--last" in line and "add a unit" in line and "24h" in line
    assert main([command, "--last", "24h", "--data-dir", str(data)]) == 0


def test_counts_and_articles() -> None:
    assert fmt.count(1, "crash") == "1 crash" and fmt.count(24, "crash") == "24 crashes"
    assert fmt.count(1, "zombie") == "1 zombie" and fmt.count(0, "zombie") == "0 zombies"
    assert fmt.count(1, "stale entry") == "1 stale entry"
    assert fmt.count(3, "stale entry") == "3 stale entries" and fmt.count(2, "day") == "2 days"
    assert fmt.article("agent_crash") == "an agent_crash" and fmt.article("zombie") == "a zombie"
    assert fmt.article("object") == "an object" and fmt.article("list") == "a list"


def test_no_hand_made_plurals_in_messages() -> None:
    """One helper counts everywhere (engine/fmt.py): no ``(s)``, no ``'' if n == 1 else 's'``."""
    in_code = re.compile(r"""else ["']s["']|["']y["'] if .* else ["']ies["']|\ba \{""")
    in_text = re.compile(r"[a-z]\((?:s|es)\)")  # "zombie(s)", in a message's own words
    found = []
    for path in sorted((ROOT / "ohm_tui").rglob("*.py")):
        with path.open("rb") as f:
            for tok in tokenize.tokenize(f.readline):
                message = tok.type == tokenize.STRING and '"""' not in tok.string  # no docstrings
                words = re.sub(r"\{[^{}]*\}", "", tok.string)  # not the f-string's code
                hit = message and in_text.search(words)
                if hit or in_code.search(tok.line):
                    found.append(f"{path.relative_to(ROOT)}:{tok.start[0]}: {tok.line.strip()}")
    assert sorted(set(found)) == []


def test_a_rate_limited_bug_reads_right(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """Two real import crashes of different kinds: the second bug is rate-limited, and
    the event says so in English ("an agent_crash bug was filed 2 seconds ago")."""
    data = _state_dir(tmp_path)
    script = tmp_path / "crasher.py"
    script.write_text(CRASHER)
    _crashed_agents(data, script, {"spec-1": "ImportError", "spec-2": "ModuleNotFoundError"})
    with OrchestratorHealthMonitor({"data_dir": str(data), "auto_fix": False}) as monitor:
        report = monitor.check()
        assert sum(i.type == "agent_crash" for i in report.issues) == 2
        assert len(monitor.report_bugs_if_any(report)) == 1
    assert main(["events", "--last", "1h", "--data-dir", str(data)]) == 0
    out = capsys.readouterr().out
    limited = next(line for line in out.splitlines() if "bug_rate_limited" in line)
    assert "an agent_crash bug was filed" in limited
    assert re.search(r"\(one per issue type in an hour; next in (an hour|\d+ minutes)\)", limited)
