"""The ``ohm`` command line, driven through its real entry points.

In-process through ``main([...])`` (fast, with capsys) and as real processes
through ``python -m ohm_tui`` and the installed ``ohm`` script, on real state
directories with real agent processes that really crash.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import psutil
import pytest

from ohm_tui.cli.main import main
from ohm_tui.cli.parser import build_parser

OHM_SCRIPT = Path(sys.executable).with_name("ohm")


# --------------------------------------------------------------------------- helpers
def wait_until(pred: Callable[[], object], timeout: float = 10.0, interval: float = 0.02) -> None:
    """Poll ``pred`` until it is truthy; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s: {pred}")


def run_main(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def run_cli(*argv: str, cwd: Path, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ohm_tui", *argv],
        cwd=cwd,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "OHM_DEBUG"}
    env["PYTHONUNBUFFERED"] = "1"
    env["COLUMNS"] = "200"
    return env


def assert_one_line_error(rc: int, out: str, err: str, *, expected_rc: int | None = None) -> None:
    """Bad input: non-zero, exactly one line on stderr, no traceback anywhere."""
    assert rc != 0
    if expected_rc is not None:
        assert rc == expected_rc, (rc, err)
    assert "Traceback" not in out + err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "error" in lines[0]


def write_json(path: Path, data: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


def make_state_dir(
    root: Path, *, loop_age: float = 0.0, agents: Mapping[str, object] | None = None
) -> Path:
    """A real-format orchestrator state directory, as interop.md describes it."""
    data = root / "data"
    orch = data / "orchestrator"
    write_json(
        orch / "work_loop_state.json",
        {
            "last_update": time.time() - loop_age,
            "active_tasks": {},
            "last_roadmap_update": time.time(),
        },
    )
    write_json(orch / "agent_state.json", {"active_agents": agents or {}, "completed_agents": []})
    # This directory's orchestrator is not running: say how to recognise it, so
    # that orchestrators elsewhere on the machine are not taken for it.
    (data / "ohm.toml").write_text(f'orchestrator_match = ["ohm-test-orchestrator-{root.name}"]\n')
    return data


def dead_pid() -> int:
    """A PID that is certainly not running: a child that has exited and been reaped."""
    proc = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    pid = int(proc.stdout)
    assert not psutil.pid_exists(pid)
    return pid


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """No ./ohm.toml of the developer's, no OHM_DEBUG, and no process left behind."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("OHM_DEBUG", raising=False)
    monkeypatch.setenv("COLUMNS", "200")
    yield tmp_path
    _kill_processes_under(tmp_path)


def _kill_processes_under(root: Path) -> None:
    """Stop every process whose command line or cwd points into this test's directory."""
    mark = str(root)
    victims = []
    for proc in psutil.process_iter(["pid", "cmdline", "cwd"]):
        try:
            cmd = " ".join(proc.info["cmdline"] or [])
            cwd = proc.info["cwd"] or ""
        except (psutil.Error, TypeError):
            continue
        if proc.pid != os.getpid() and (mark in cmd or cwd.startswith(mark)):
            victims.append(proc)
    for proc in victims:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(victims, timeout=5)


# --------------------------------------------------------------------------- bad input
def test_unknown_option_is_a_one_line_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, err = run_main(capsys, "--bogus")
    assert_one_line_error(rc, out, err, expected_rc=2)
    assert "--bogus" in err


def test_unknown_option_of_check_is_unknown_status(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, err = run_main(capsys, "check", "--bogus")
    assert_one_line_error(rc, out, err, expected_rc=3)


def test_bug_without_an_action(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, err = run_main(capsys, "bug")
    assert_one_line_error(rc, out, err, expected_rc=2)
    assert "show" in err


def test_corrupt_database_is_an_operational_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    data = make_state_dir(tmp_path)
    (data / "orchestrator.db").write_bytes(b"not a database" * 500)
    rc, out, err = run_main(capsys, "bugs", "--data-dir", str(data))
    assert_one_line_error(rc, out, err, expected_rc=1)
    assert "orchestrator.db" in err
    rc, doc = check_json(capsys, data)  # a check still runs, on live state, and says so
    assert rc == 1 and doc["status"] == "degraded"
    assert any(i["type"] == "storage_error" for i in doc["issues"])


def test_unknown_command(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, err = run_main(capsys, "chekc")
    assert_one_line_error(rc, out, err, expected_rc=2)


@pytest.mark.parametrize("value", ["banana", "-5m", "0s", "12x", ""])
def test_bad_duration(capsys: pytest.CaptureFixture[str], tmp_path: Path, value: str) -> None:
    data = make_state_dir(tmp_path)
    rc, out, err = run_main(capsys, "crashes", f"--last={value}", "--data-dir", str(data))
    assert_one_line_error(rc, out, err, expected_rc=2)
    assert "--last" in err


@pytest.mark.parametrize("command", [["crashes"], ["bugs"], ["simulate-crash"], ["events"]])
def test_missing_data_dir(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, command: list[str]
) -> None:
    missing = tmp_path / "no-such-dir"
    rc, out, err = run_main(capsys, "--data-dir", str(missing), *command)
    assert_one_line_error(rc, out, err, expected_rc=2)
    assert "no-such-dir" in err and "does not exist" in err
    assert not missing.exists()  # and nothing was created there


def test_missing_data_dir_for_check_is_unknown(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    rc, out, err = run_main(capsys, "check", "--data-dir", str(tmp_path / "nope"))
    assert_one_line_error(rc, out, err, expected_rc=3)


def test_config_file_with_a_typo(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    data = make_state_dir(tmp_path)
    cfg = tmp_path / "ohm.toml"
    cfg.write_text("helth_check_interval = 5\n")
    rc, out, err = run_main(capsys, "--config", str(cfg), "crashes", "--data-dir", str(data))
    assert_one_line_error(rc, out, err, expected_rc=2)
    assert "helth_check_interval" in err and "health_check_interval" in err  # names it, suggests


def test_config_found_in_cwd_is_validated_too(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    data = make_state_dir(tmp_path)
    (data / "ohm.toml").unlink()  # a config in the data dir would win over ./ohm.toml
    (tmp_path / "ohm.toml").write_text('max_respawn_attempts = "three"\n')
    rc, out, err = run_main(capsys, "bugs", "--data-dir", str(data))
    assert_one_line_error(rc, out, err, expected_rc=2)
    assert "max_respawn_attempts" in err


def test_missing_config_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    data = make_state_dir(tmp_path)
    rc, out, err = run_main(capsys, "--config", "nope.toml", "bugs", "--data-dir", str(data))
    assert_one_line_error(rc, out, err, expected_rc=2)
    assert "nope.toml" in err


def test_bad_bug_number_text(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    data = make_state_dir(tmp_path)
    rc, out, err = run_main(capsys, "bug", "show", "BUG-x", "--data-dir", str(data))
    assert_one_line_error(rc, out, err, expected_rc=2)


def test_unknown_bug_number(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    data = make_state_dir(tmp_path)
    rc, out, err = run_main(capsys, "bug", "show", "BUG-999", "--data-dir", str(data))
    assert_one_line_error(rc, out, err, expected_rc=2)
    assert "999" in err
    rc, out, err = run_main(capsys, "bug", "close", "BUG-999", "--data-dir", str(data))
    assert_one_line_error(rc, out, err, expected_rc=2)


def test_unknown_agent(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    data = make_state_dir(tmp_path)
    rc, out, err = run_main(capsys, "respawn", "no-such-task", "--data-dir", str(data))
    assert_one_line_error(rc, out, err, expected_rc=2)


@pytest.mark.parametrize(
    "argv",
    [
        ["--bogus"],
        ["crashes", "--last=banana"],
        ["--data-dir", "no-such-dir", "bugs"],
        ["check", "--data-dir", "no-such-dir"],
    ],
)
def test_bad_input_through_python_m(tmp_path: Path, argv: list[str]) -> None:
    proc = run_cli(*argv, cwd=tmp_path)
    assert_one_line_error(proc.returncode, proc.stdout, proc.stderr)


def test_bad_input_through_the_ohm_script(tmp_path: Path) -> None:
    assert OHM_SCRIPT.exists(), "the ohm console script is installed next to the interpreter"
    proc = subprocess.run(
        [str(OHM_SCRIPT), "crashes", "--last=banana"],
        cwd=tmp_path,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert_one_line_error(proc.returncode, proc.stdout, proc.stderr, expected_rc=2)


def test_ohm_debug_shows_the_traceback(tmp_path: Path) -> None:
    data = make_state_dir(tmp_path)
    env = clean_env() | {"OHM_DEBUG": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "ohm_tui", "bug", "show", "BUG-999", "--data-dir", str(data)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode != 0
    assert "Traceback" in proc.stderr


# --------------------------------------------------------------------------- help
def _command_paths() -> list[list[str]]:
    """Every command and sub-command the parser knows, found from the parser itself."""
    import argparse

    paths: list[list[str]] = [[]]

    def walk(parser: argparse.ArgumentParser, prefix: list[str]) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    paths.append([*prefix, name])
                    walk(sub, [*prefix, name])

    walk(build_parser(), [])
    return paths


def test_every_command_is_covered_by_the_help_test() -> None:
    names = {" ".join(p) for p in _command_paths()}
    for expected in (
        "check",
        "crashes",
        "bugs",
        "bug show",
        "bug file",
        "bug close",
        "bug reopen",
        "simulate-crash",
        "watch",
        "respawn",
        "stop",
        "clean-zombies",
        "demo",
        "console",
        "agents",
        "events",
    ):
        assert expected in names


@pytest.mark.parametrize("path", _command_paths(), ids=lambda p: " ".join(p) or "ohm")
def test_help_has_examples(capsys: pytest.CaptureFixture[str], path: list[str]) -> None:
    rc, out, _ = run_main(capsys, *path, "--help")
    assert rc == 0
    assert "Examples" in out
    assert "--data-dir" in out and "--config" in out
    assert "ohm " in out.split("Examples", 1)[1]


def test_global_options_before_or_after_the_command(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    missing = str(tmp_path / "before")
    rc, _, err = run_main(capsys, "--data-dir", missing, "bugs")
    assert rc == 2 and "before" in err
    rc, _, err = run_main(capsys, "bugs", "--data-dir", str(tmp_path / "after"))
    assert rc == 2 and "after" in err
    # after the command wins over before it
    rc, _, err = run_main(capsys, "--data-dir", missing, "bugs", "--data-dir", str(tmp_path / "x2"))
    assert rc == 2 and "x2" in err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    rc, out, _ = run_main(capsys, "--version")
    assert rc == 0 and out.startswith("ohm ")


# --------------------------------------------------------------------------- check
def check_json(
    capsys: pytest.CaptureFixture[str], data: Path, *extra: str
) -> tuple[int, dict[str, Any]]:
    rc, out, err = run_main(capsys, "check", "--json", "--data-dir", str(data), *extra)
    assert "Traceback" not in err
    return rc, json.loads(out)


def test_check_healthy_exits_0(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    data = make_state_dir(tmp_path)
    rc, doc = check_json(capsys, data)
    assert doc["status"] == "healthy", doc
    assert rc == 0
    assert doc["issues"] == []
    for key in ("active_agents", "crashed_agents_last_hour", "respawn_success_rate"):
        assert key in doc["metrics"]
    assert doc["metrics"]["orchestrator_last_poll"] < 60
    rc, out, _ = run_main(capsys, "check", "--data-dir", str(data))
    assert rc == 0
    assert out.startswith("HEALTHY: 0 issues")
    poll = out.split("last poll", 1)[1].splitlines()[0]
    assert "ago" in poll or "now" in poll


def test_check_corrupt_agent_state_is_degraded_exits_1(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    data = make_state_dir(tmp_path)
    (data / "orchestrator" / "agent_state.json").write_text('{"active_agents": {"123": {"pid"')
    rc, doc = check_json(capsys, data)
    assert doc["status"] == "degraded", doc
    assert rc == 1
    assert any("agent_state.json" in i["error"] for i in doc["issues"])
    rc, out, _ = run_main(capsys, "check", "--data-dir", str(data))
    assert rc == 1 and out.startswith("DEGRADED")
    assert "agent_state.json" in out


def test_check_frozen_loop_is_critical_exits_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    data = make_state_dir(tmp_path, loop_age=89 * 60)
    rc, doc = check_json(capsys, data)
    assert doc["status"] == "critical", doc
    assert rc == 2
    assert any(i["type"] == "orchestrator_freeze" for i in doc["issues"])
    assert 89 * 60 - 5 < doc["metrics"]["orchestrator_last_poll"] < 89 * 60 + 60
    rc, out, _ = run_main(capsys, "check", "--data-dir", str(data))
    assert rc == 2
    assert out.startswith("CRITICAL")
    assert "[critical] orchestrator_freeze: " in out
    assert "last poll an hour ago" in out  # humanize: 89 minutes


def test_check_exit_codes_through_the_ohm_script(tmp_path: Path) -> None:
    healthy = make_state_dir(tmp_path / "h")
    frozen = make_state_dir(tmp_path / "f", loop_age=89 * 60)
    for data, expected in ((healthy, 0), (frozen, 2)):
        proc = subprocess.run(
            [str(OHM_SCRIPT), "check", "--json", "--data-dir", str(data)],
            cwd=tmp_path,
            env=clean_env(),
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert proc.returncode == expected, proc.stderr
        assert json.loads(proc.stdout)["status"] == ["healthy", "degraded", "critical"][expected]


# --------------------------------------------------------------------------- crashes
def test_simulate_crash_then_check_fix_then_crashes(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    data = make_state_dir(tmp_path)
    d = str(data)
    rc, out, _ = run_main(
        capsys,
        "simulate-crash",
        "--agent=architect",
        "--task",
        "spec-20",
        "--json",
        "--data-dir",
        d,
    )
    assert rc == 0
    agent = json.loads(out)
    assert agent["agent_type"] == "architect" and agent["task_id"] == "spec-20"
    assert agent["pid"] > 0 and agent["log_file"]

    wait_until(lambda: not psutil.pid_exists(agent["pid"]), timeout=15)
    fixed: list[str] = []

    def check_fix_respawns() -> bool:
        rc, out, err = run_main(capsys, "check", "--fix", "--data-dir", d)
        assert rc in (0, 1, 2) and "Traceback" not in err, out + err
        fixed.append(out)
        return "[ok] respawn" in out

    wait_until(check_fix_respawns, timeout=15, interval=0.1)
    out = fixed[-1]
    assert "Fixes:" in out and "architect" in out and "spec-20" in out
    assert "Bugs filed or updated: BUG-" in out  # ImportError files a bug at once

    rc, out, _ = run_main(capsys, "crashes", "--last=1h", "--json", "--data-dir", d)
    assert rc == 0
    rows = json.loads(out)
    mine = [r for r in rows if r["task_id"] == "spec-20"]
    assert mine, rows
    assert mine[0]["error_type"] == "ImportError"
    assert mine[0]["agent_type"] == "architect"
    assert "SkillNames" in (mine[0]["error_message"] or "")

    rc, out, _ = run_main(capsys, "crashes", "--last=1h", "--agent", "architect", "--data-dir", d)
    assert rc == 0
    header, *lines = out.strip().splitlines()
    assert header.split()[:3] == ["TIME", "AGENT", "TASK"]
    assert any("ImportError" in line and "spec-20" in line for line in lines)
    assert all(
        line.startswith(("now", "a second ago", "1 second ago")) or " ago " in line
        for line in lines
    )
    assert any("SkillNames" in line for line in lines)  # the root cause

    rc, out, _ = run_main(capsys, "events", "--last=1h", "--json", "--data-dir", d)
    assert rc == 0
    kinds = {e["kind"] for e in json.loads(out) if e["task_id"] == "spec-20"}
    assert {"crashed", "respawned"} <= kinds, kinds
    rc, out, _ = run_main(capsys, "events", "--data-dir", d)
    assert rc == 0 and "respawned" in out and "spec-20" in out

    # a manual respawn by task id: shows what will run, then the new PID
    rc, out, err = run_main(capsys, "respawn", "spec-20", "--data-dir", d)
    assert rc == 0, out + err
    plan, result = out.strip().splitlines()[-2:]
    assert "simulated_agent" in plan
    assert result.startswith("[ok] respawn") and "new PID" in result

    rc, out, _ = run_main(
        capsys, "crashes", "--last=1h", "--agent", "no_such_type", "--data-dir", d
    )
    assert rc == 0 and out.startswith("No crashes in the last 1h")


def test_simulate_crash_unknown_error_type(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    data = make_state_dir(tmp_path)
    rc, out, err = run_main(capsys, "simulate-crash", "--error", "Bogus", "--data-dir", str(data))
    assert_one_line_error(rc, out, err, expected_rc=2)


# --------------------------------------------------------------------------- bugs
def test_bug_file_list_close_reopen_priority(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    data = make_state_dir(tmp_path)
    d = str(data)
    title = "architect hangs at a [y/N] prompt"
    rc, out, _ = run_main(
        capsys, "bug", "file", "--title", title, "--priority", "High",
        "--description", "waits for a person", "--json", "--data-dir", d,
    )  # fmt: skip
    assert rc == 0
    bug = json.loads(out)
    number, label = bug["bug_number"], bug["label"]
    assert label == f"BUG-{number:03d}"
    assert bug["category"] == "manual" and bug["assigned_to"] == "code_developer"

    def listed(status: str = "open") -> dict[int, dict[str, Any]]:
        rc, out, _ = run_main(capsys, "bugs", "--status", status, "--json", "--data-dir", d)
        assert rc == 0
        return {b["bug_number"]: b for b in json.loads(out)}

    assert listed()[number]["title"] == title
    rc, out, _ = run_main(capsys, "bugs", "--data-dir", d)
    assert rc == 0 and label in out and "High" in out

    rc, out, _ = run_main(capsys, "bug", "close", label, "--data-dir", d)
    assert rc == 0 and f"{label} closed" in out
    assert number not in listed()
    assert listed("all")[number]["status"] == "closed"

    rc, out, _ = run_main(capsys, "bug", "reopen", str(number), "--data-dir", d)
    assert rc == 0 and f"{label} reopened" in out
    assert listed()[number]["status"] == "open"

    rc, out, _ = run_main(capsys, "bug", "priority", label.lower(), "Critical", "--data-dir", d)
    assert rc == 0
    assert listed()[number]["priority"] == "Critical"

    rc, out, _ = run_main(capsys, "bug", "show", label, "--data-dir", d)
    assert rc == 0
    assert out.startswith(f"{label}: {title}")
    assert "Priority:    Critical" in out and "waits for a person" in out


# --------------------------------------------------------------------------- agents
@pytest.fixture
def live_agent(tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A real, live agent process listed in a real-format agent_state.json."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import time; print('working on spec-7', flush=True); time.sleep(60)",
        ],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
    )
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait()


def _state_with(tmp_path: Path, proc: subprocess.Popen[bytes]) -> Path:
    from datetime import datetime

    started = psutil.Process(proc.pid).create_time()
    entry = {
        "pid": proc.pid,
        "agent_type": "architect",
        "task_id": "spec-7",
        "task_type": "create_spec",
        "command": f"{sys.executable} -c 'import time; time.sleep(60)'",
        "started_at": datetime.fromtimestamp(started).isoformat(),
        "status": "running",
    }
    return make_state_dir(tmp_path, agents={str(proc.pid): entry})


def test_agents_lists_a_live_agent_and_stop_stops_it(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, live_agent: subprocess.Popen[bytes]
) -> None:
    data = _state_with(tmp_path, live_agent)
    d = str(data)
    rc, out, _ = run_main(capsys, "agents", "--json", "--data-dir", d)
    assert rc == 0
    agents = {a["pid"]: a for a in json.loads(out)}
    assert agents[live_agent.pid]["status"] == "running"
    assert agents[live_agent.pid]["task_id"] == "spec-7"

    rc, out, _ = run_main(capsys, "agents", "--data-dir", d)
    assert rc == 0
    row = next(line for line in out.splitlines() if line.startswith(str(live_agent.pid)))
    assert "architect" in row and "running" in row and "B" in row and "0/3" in row

    rc, out, _ = run_main(capsys, "respawn", str(live_agent.pid), "--dry-run", "--data-dir", d)
    assert rc == 0 and "time.sleep(60)" in out
    assert live_agent.poll() is None  # a dry run touches nothing

    rc, out, err = run_main(capsys, "stop", str(live_agent.pid), "--data-dir", d)
    assert rc == 0, out + err
    assert out.startswith("[ok]")
    assert live_agent.wait(timeout=10) is not None


# --------------------------------------------------------------------------- zombies
def test_clean_zombies_dry_run_changes_nothing(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from datetime import datetime

    pids = [dead_pid() for _ in range(3)]
    started = datetime.fromtimestamp(time.time() - 600).isoformat()
    agents = {
        str(pid): {
            "pid": pid,
            "agent_type": "code_developer",
            "task_id": f"impl-{i}",
            "command": "poetry run code-developer --auto-approve",
            "started_at": started,
            "status": "running",
        }
        for i, pid in enumerate(pids)
    }
    data = make_state_dir(tmp_path, agents=agents)
    state = data / "orchestrator" / "agent_state.json"
    before = state.read_bytes()

    rc, out, _ = run_main(capsys, "clean-zombies", "--dry-run", "--data-dir", str(data))
    assert rc == 0
    assert out.startswith("Would clean:")
    for pid in pids:
        assert str(pid) in out
    assert state.read_bytes() == before

    rc, out, _ = run_main(capsys, "clean-zombies", "--dry-run", "--json", "--data-dir", str(data))
    assert rc == 0 and len(json.loads(out)["plan"]) >= 3
    assert state.read_bytes() == before

    rc, out, err = run_main(capsys, "clean-zombies", "--data-dir", str(data))
    assert rc == 0, out + err
    after = json.loads(state.read_text())
    assert after["active_agents"] == {}
    assert {e["pid"] for e in after["completed_agents"]} >= set(pids)


# --------------------------------------------------------------------------- watch
class Watch:
    """``ohm watch`` as a real process, its stdout collected line by line."""

    def __init__(self, data: Path, cwd: Path, *extra: str) -> None:
        import threading

        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ohm_tui", "watch", "--data-dir", str(data), *extra],
            cwd=cwd,
            env=clean_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        self.lines: list[str] = []
        assert self.proc.stdout is not None
        stdout = self.proc.stdout
        self._reader = threading.Thread(target=lambda: self.lines.extend(stdout), daemon=True)
        self._reader.start()

    def has(self, *words: str) -> bool:
        return any(all(w in line for w in words) for line in list(self.lines))

    def stop(self, sig: int = signal.SIGTERM) -> tuple[int, str]:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        rc = self.proc.wait(timeout=20)
        self._reader.join(timeout=5)
        assert self.proc.stderr is not None
        return rc, self.proc.stderr.read()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def watch_factory(tmp_path: Path) -> Iterator[Callable[..., Watch]]:
    started: list[Watch] = []

    def start(data: Path, *extra: str) -> Watch:
        w = Watch(data, tmp_path, *extra)
        started.append(w)
        return w

    yield start
    for w in started:
        w.kill()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_watch_stops_cleanly_on_signal(
    tmp_path: Path, watch_factory: Callable[..., Watch], sig: int
) -> None:
    data = make_state_dir(tmp_path)
    w = watch_factory(data, "--interval", "0.2")
    wait_until(lambda: w.has("ohm watch: watching"), timeout=15)
    rc, err = w.stop(sig)
    assert rc == 0, err
    assert "Traceback" not in err + "".join(w.lines)
    assert w.has("ohm watch: stopped")


def test_watch_prints_a_line_when_a_real_agent_crashes(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, watch_factory: Callable[..., Watch]
) -> None:
    data = make_state_dir(tmp_path)
    w = watch_factory(data, "--interval", "0.2", "--no-fix")
    wait_until(lambda: w.has("ohm watch: watching"), timeout=15)
    rc, out, _ = run_main(
        capsys, "simulate-crash", "--agent=architect", "--error", "RuntimeError",
        "--task", "spec-99", "--json", "--data-dir", str(data),
    )  # fmt: skip
    assert rc == 0
    pid = json.loads(out)["pid"]
    wait_until(lambda: w.has("architect", str(pid), "spec-99"), timeout=15)
    line = next(line for line in w.lines if str(pid) in line and "spec-99" in line)
    assert line[:4].isdigit() and "T" in line[:11]  # ISO time first
    rc, err = w.stop()
    assert rc == 0 and "Traceback" not in err


# --------------------------------------------------------------------------- demo
def _demo_dir(lines: list[str]) -> Path:
    line = next(line for line in lines if "sample orchestrator running in" in line)
    return Path(line.rsplit(" in ", 1)[1].strip())


def _processes_of(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def _alive(proc: psutil.Process) -> bool:
    """Still running (same pid and create time) and not merely an unreaped zombie."""
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _assert_no_survivors(before: list[psutil.Process], state_dir: Path) -> None:
    """No process the demo started lives on: not a child seen before, not one naming its dir."""
    mark = str(state_dir)
    named = [
        p.pid
        for p in psutil.process_iter(["cmdline"])
        if mark in " ".join(p.info["cmdline"] or []) and _alive(p)
    ]
    assert named == []  # no orchestrator or agent of this demo is left, at once
    # ohm's runner wrappers record their agent's exit, then end by themselves.
    wait_until(lambda: not any(_alive(p) for p in before), timeout=5)


def test_demo_no_tui_shows_crashes_and_respawns_then_stops_cleanly(
    tmp_path: Path, watch_factory: Callable[..., Watch]
) -> None:
    import threading

    proc = subprocess.Popen(
        # Era 1: its agents are processes, so ohm respawns them (sessions are never respawned).
        [
            sys.executable,
            "-m",
            "ohm_tui",
            "demo",
            "--no-tui",
            "--speed",
            "20",
            "--seed",
            "7",
            "--era",
            "1",
        ],
        cwd=tmp_path,
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    lines: list[str] = []
    assert proc.stdout is not None
    stdout = proc.stdout
    reader = threading.Thread(target=lambda: lines.extend(stdout), daemon=True)
    reader.start()
    try:
        wait_until(lambda: any("running in" in line for line in lines), timeout=15)
        state_dir = _demo_dir(lines)
        assert state_dir.is_dir()
        wait_until(lambda: any(" crashed " in line for line in list(lines)), timeout=20)
        wait_until(lambda: any(" respawned " in line for line in list(lines)), timeout=20)
        before = _processes_of(proc.pid)
        assert before, "the demo runs real processes"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        reader.join(timeout=5)
        assert proc.stderr is not None
        err = proc.stderr.read()
        assert "Traceback" not in err + "".join(lines)
        assert any("every demo process has ended" in line for line in lines)
        _assert_no_survivors(before, state_dir)
        assert not state_dir.exists()  # a temp dir, removed without --keep
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


class PtyRun:
    """``python -m ohm_tui ...`` in a real terminal (a pty), its screen output collected."""

    def __init__(self, cwd: Path, *argv: str) -> None:
        import pty

        pid, fd = pty.fork()
        if pid == 0:  # pragma: no cover - the child
            os.chdir(cwd)
            env = clean_env() | {"TERM": "xterm-256color", "LINES": "30", "COLUMNS": "100"}
            os.execve(sys.executable, [sys.executable, "-m", "ohm_tui", *argv], env)
        self.pid, self.fd = pid, fd
        self.screen = bytearray()
        self.status: int | None = None

    def pump(self) -> None:
        """Read what the app drew (a full pty would block it) and notice its exit."""
        import select

        ready, _, _ = select.select([self.fd], [], [], 0.05)
        if ready:
            with contextlib.suppress(OSError):
                self.screen.extend(os.read(self.fd, 65536))
        if self.status is None:
            done, st = os.waitpid(self.pid, os.WNOHANG)
            if done:
                self.status = os.waitstatus_to_exitcode(st)

    def shows(self, *words: bytes) -> bool:
        self.pump()
        return all(w in self.screen for w in words)

    def exited(self) -> bool:
        self.pump()
        return self.status is not None

    @property
    def text(self) -> str:
        return self.screen.decode(errors="replace")

    def close(self) -> None:
        if self.status is None:  # the test failed: take the whole tree down
            tree = [*_processes_of(self.pid), psutil.Process(self.pid)]
            for proc in tree:
                with contextlib.suppress(psutil.Error):
                    proc.kill()
            os.waitpid(self.pid, 0)
            psutil.wait_procs(tree, timeout=5)
        os.close(self.fd)


@pytest.mark.parametrize("sig", [signal.SIGHUP, signal.SIGTERM])
def test_demo_console_ends_cleanly_on_signal(tmp_path: Path, sig: int) -> None:
    """The real console in a real terminal; a hang-up or SIGTERM ends every demo process."""
    run = PtyRun(tmp_path, "demo", "--speed", "20")
    try:
        wait_until(lambda: run.shows(b"running in", b"Quit"), timeout=20)
        state_dir = _demo_dir(run.text.splitlines())
        before = _processes_of(run.pid)
        assert before
        os.kill(run.pid, sig)
        wait_until(run.exited, timeout=30)
        assert run.status == 0
        assert "Traceback" not in run.text
        assert "every demo process has ended" in run.text
        _assert_no_survivors(before, state_dir)
    finally:
        run.close()


@pytest.mark.parametrize("era", ["1", "3"])
def test_demo_first_screen_is_the_orchestrator_not_a_false_alarm(tmp_path: Path, era: str) -> None:
    """The console opens once the sample orchestrator has written its first state: its
    first screens never say DEGRADED because a state file is not there yet."""
    run = PtyRun(tmp_path, "demo", "--era", era)
    try:
        wait_until(lambda: run.shows(b"Quit", b"poll"), timeout=30)
        wait_until(lambda: run.shows(b"Quit", b"active"), timeout=30)
        assert "unreadable" not in run.text and "poll unknown" not in run.text, run.text[-2000:]
        os.kill(run.pid, signal.SIGTERM)
        wait_until(run.exited, timeout=30)
        assert run.status == 0
    finally:
        run.close()


@pytest.mark.parametrize("argv", [[], ["--read-only"], ["console", "--read-only"]])
def test_ohm_without_a_command_opens_the_console(tmp_path: Path, argv: list[str]) -> None:
    data = make_state_dir(tmp_path)
    run = PtyRun(tmp_path, "--data-dir", str(data), *argv)
    try:
        wait_until(lambda: run.shows(b"Quit"), timeout=20)
        assert (b"read-only" in run.screen.lower()) == bool(argv)
        os.kill(run.pid, signal.SIGTERM)
        wait_until(run.exited, timeout=20)
        assert run.status == 0
        assert "Traceback" not in run.text
    finally:
        run.close()


def test_demo_keep_keeps_the_state_dir(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "ohm_tui", "demo", "--no-tui", "--keep", "--speed", "20"],
        cwd=tmp_path,
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    state_dir: Path | None = None
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        state_dir = _demo_dir([first])
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=30)
        assert proc.returncode == 0
        assert f"state kept in {state_dir}" in rest
        assert state_dir.is_dir() and (state_dir / "orchestrator.log").is_file()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if state_dir is not None:
            import shutil

            shutil.rmtree(state_dir, ignore_errors=True)


def test_crashes_table_shows_the_newest_200_and_says_how_many_more(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from ohm_tui.engine.model import CrashInfo
    from ohm_tui.engine.store import Store

    data = make_state_dir(tmp_path)
    now = time.time()
    with Store(data / "orchestrator.db") as store:
        for i in range(205):
            store.record_crash(
                agent_key=f"{1000 + i}@{int(now)}",
                agent_pid=1000 + i,
                agent_type="architect",
                task_id=f"spec-{i}",
                crashed_at=now - i,
                exit_code=1,
                info=CrashInfo(error_type="RuntimeError", error_message=f"boom {i}"),
                log_file=None,
                command_text="x",
                cwd=None,
                source="real",
                fix_state="skipped",
            )
    rc, out, _ = run_main(capsys, "crashes", "--last=1h", "--data-dir", str(data))
    assert rc == 0
    assert "(200 newest of 205 crashes in the last 1h; --limit 0 shows all)" in out
    assert "boom 0" in out and "boom 204" not in out
    rc, out, _ = run_main(capsys, "crashes", "--last=1h", "--limit", "0", "--data-dir", str(data))
    assert "boom 204" in out and "newest of" not in out
    rc, out, _ = run_main(capsys, "crashes", "--last=1h", "--json", "--data-dir", str(data))
    assert len(json.loads(out)) == 205


def test_check_on_a_directory_that_is_not_an_orchestrators_is_unknown_and_writes_nothing(
    tmp_path: Path,
) -> None:
    """Not DEGRADED with a database created there: one line naming what was looked for."""
    stray = tmp_path / "x"
    stray.mkdir()
    proc = run_cli("check", "--data-dir", str(stray), cwd=tmp_path)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert proc.stdout == ""
    (line,) = proc.stderr.splitlines()
    assert "no orchestrator state found" in line
    for name in ("agent_state.json", "agent_lifecycle", "claude_invocations.db"):
        assert name in line
    assert list(stray.iterdir()) == []
    listing = run_cli("agents", "--data-dir", str(stray), cwd=tmp_path)
    assert listing.returncode == 2 and "no orchestrator state found" in listing.stderr
    assert list(stray.iterdir()) == []


def test_console_on_a_directory_that_is_not_an_orchestrators_is_refused_untouched(
    tmp_path: Path,
) -> None:
    stray = tmp_path / "x"
    stray.mkdir()
    proc = run_cli("console", "--data-dir", str(stray), cwd=tmp_path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "no orchestrator state found" in proc.stderr
    assert list(stray.iterdir()) == []


def test_watch_waits_for_the_orchestrator_writing_nothing_until_it_comes(
    tmp_path: Path,
) -> None:
    """``ohm watch`` started before the orchestrator (a unit ordered first) waits, says
    so, and creates no database until the orchestrator's state appears."""
    root = tmp_path / "later"
    data = root / "data"
    data.mkdir(parents=True)
    watch = Watch(data, tmp_path)
    try:
        wait_until(lambda: watch.has("no orchestrator state in", "waiting"), timeout=20)
        assert list(data.iterdir()) == []
        assert watch.proc.poll() is None
        make_state_dir(root)
        wait_until(lambda: watch.has("ohm watch: watching"), timeout=20)
        wait_until((data / "orchestrator.db").exists, timeout=20)
        rc, err = watch.stop()
        assert rc == 0, err
        assert "Traceback" not in err
    finally:
        watch.kill()


def test_watch_stopped_while_waiting_exits_cleanly(tmp_path: Path) -> None:
    data = tmp_path / "empty"
    data.mkdir()
    watch = Watch(data, tmp_path)
    try:
        wait_until(lambda: watch.has("waiting"), timeout=20)
        rc, err = watch.stop()
        assert rc == 0, err
        assert watch.has("ohm watch: stopped")
        assert list(data.iterdir()) == []
    finally:
        watch.kill()


@pytest.mark.parametrize(("era", "keep"), [(1, False), (2, True), (3, False)])
def test_demo_keeps_everything_inside_its_root(tmp_path: Path, era: int, keep: bool) -> None:
    """The demo lays out a whole orchestrator root (``data/`` + ``tickets/``) in its
    temp dir: no ticket lands beside it, and without --keep the root goes on quit."""
    import threading

    tmp = tmp_path / "tmp"
    tmp.mkdir()
    argv = ["demo", "--no-tui", "--speed", "20", "--era", str(era), *(["--keep"] if keep else [])]
    proc = subprocess.Popen(
        [sys.executable, "-m", "ohm_tui", *argv],
        cwd=tmp_path,
        env=clean_env() | {"TMPDIR": str(tmp)},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    lines: list[str] = []
    assert proc.stdout is not None
    stdout = proc.stdout
    reader = threading.Thread(target=lambda: lines.extend(stdout), daemon=True)
    reader.start()
    try:
        wait_until(lambda: any("running in" in line for line in lines), timeout=15)
        state_dir = _demo_dir(lines)
        root = state_dir.parent
        assert state_dir.name == "data" and root.parent == tmp
        wait_until(lambda: any((root / "tickets").glob("BUG-*.md")), timeout=60)
        assert sorted(p.name for p in tmp.iterdir()) == [root.name]  # nothing beside it
        # (a ticket being written is a dot-file until it is renamed into place)
        assert sorted(p.name for p in (root / "tickets").glob("BUG-*.md"))[0] == "BUG-001.md"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        reader.join(timeout=5)
        text = "".join(lines)
        if keep:
            assert f"state kept in {state_dir}" in text and f"{root}/tickets" in text
            assert (state_dir / "orchestrator.log").is_file()
            assert any((root / "tickets").glob("BUG-*.md"))
        else:
            assert f"removed {root}" in text
            assert list(tmp.iterdir()) == []
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
