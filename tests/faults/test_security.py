"""Security: trust files before running commands from them, run commands as argv
lists only, keep text from agents inert, keep tickets and logs inside their folders."""

from __future__ import annotations

import ast
import json
import os
import shlex
import subprocess
from pathlib import Path

import pytest

from ohm_tui.engine import timeutil
from ohm_tui.engine.config import ConfigError, load_config
from ohm_tui.engine.model import slug
from ohm_tui.engine.sources import logtail
from tests.faults.kit import (
    CRASH_SCRIPT,
    PY,
    REPO,
    MonitorFactory,
    Orchestrator,
    count,
    event_kinds,
    python_env,
    q,
)
from tests.helpers import wait_until

NOBODY = 65534


def _marker_argv(marker: Path) -> list[str]:
    """Crashes as the orchestrator's run; a respawned run would leave ``marker``."""
    script = f"if [ -p /dev/stdin ]; then {CRASH_SCRIPT}; else touch {marker}; exec sleep 600; fi"
    return ["/bin/sh", "-c", script, "fault-agent", "RuntimeError: boom"]


# ----------------------------------------------------------------- trust the state file
@pytest.mark.parametrize(
    ("how", "words"),
    [
        ("group_writable", "is writable by group"),
        ("other_writable", "is writable by others"),
        ("other_owner", f"is owned by uid {NOBODY}, not you"),
    ],
)
def test_respawn_refused_from_an_untrusted_state_file(
    how: str, words: str, orch: Orchestrator, ohm: MonitorFactory, tmp_path: Path
) -> None:
    marker = tmp_path / "respawn-ran"
    agent = orch.start("architect", "spec-20", argv=_marker_argv(marker))
    path = orch.state_path
    if how == "group_writable":
        path.chmod(0o664)
    elif how == "other_writable":
        path.chmod(0o646)
    else:
        if os.geteuid() != 0:
            pytest.skip("needs root to give the file to another user")
        os.chown(path, NOBODY, NOBODY)
    mon = ohm()
    mon.check()
    agent.crash()
    wait_until(lambda: mon.check() and mon.crashes(), timeout=5)
    results = mon.auto_fix_issues()
    (failed,) = [r for r in results if r.action == "respawn"]
    assert not failed.ok
    # As ssh says of a loose key file: what, why, and how to fix it.
    assert f"state file {path} {words}; refusing to trust it" in failed.message
    assert "fix with: " in failed.message and "allow_insecure_files = true" in failed.message
    db = mon.config.database_path
    msgs = [m for (m,) in q(db, "SELECT message FROM ohm_events WHERE kind='respawn_failed'")]
    assert msgs and words in msgs[0]
    assert count(db, "SELECT COUNT(*) FROM ohm_agents") == 0
    assert not marker.exists()  # nothing ran
    assert q(db, "SELECT respawned FROM agent_crashes") == [(0,)]


def test_respawn_allowed_when_explicitly_allowed(
    orch: Orchestrator, ohm: MonitorFactory, tmp_path: Path
) -> None:
    marker = tmp_path / "respawn-ran"
    agent = orch.start("architect", "spec-20", argv=_marker_argv(marker))
    orch.state_path.chmod(0o666)
    mon = ohm(allow_insecure_files=True)
    mon.check()
    agent.crash()
    wait_until(lambda: mon.check() and mon.crashes(), timeout=5)
    assert [r.ok for r in mon.auto_fix_issues() if r.action == "respawn"] == [True]
    wait_until(marker.exists, timeout=5)


# ----------------------------------------------------------------- trust the config file
def _loose(path: Path, how: str) -> None:
    if how == "group_writable":
        path.chmod(0o664)
    elif how == "other_writable":
        path.chmod(0o606)
    else:
        if os.geteuid() != 0:
            pytest.skip("needs root to give the file to another user")
        os.chown(path, NOBODY, NOBODY)


HOW = ["group_writable", "other_writable", "other_owner"]
WORDS = {
    "group_writable": "is writable by group",
    "other_writable": "is writable by others",
    "other_owner": f"is owned by uid {NOBODY}",
}


@pytest.mark.parametrize("how", HOW)
@pytest.mark.parametrize("where", ["ohm.toml", "pyproject.toml", "explicit"])
def test_untrusted_config_file_refused(
    how: str, where: str, tmp_path: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OHM_ALLOW_INSECURE_CONFIG", raising=False)
    run = f'orchestrator_restart_command = ["/bin/sh", "-c", "touch {tmp_path}/pwned"]\n'
    # A key inside the file cannot waive the check: a loose file could set it itself.
    body = f'data_dir = "{data_dir}"\nallow_insecure_files = true\n{run}'
    source: str | None = None
    if where == "pyproject.toml":
        path = tmp_path / "pyproject.toml"
        path.write_text("[tool.ohm]\n" + body)
    elif where == "ohm.toml":
        path = tmp_path / "ohm.toml"
        path.write_text(body)
    else:
        path = tmp_path / "etc" / "watch.toml"
        path.parent.mkdir()
        path.write_text(body)
        source = str(path)
    _loose(path, how)
    with pytest.raises(ConfigError) as err:
        load_config(source)
    text = str(err.value)
    assert f"config file {path} {WORDS[how]}" in text and "refusing to trust it" in text
    assert "OHM_ALLOW_INSECURE_CONFIG=1" in text
    assert list(data_dir.iterdir()) == []  # before anything runs
    # Allowed only from outside the file: by the caller, or the environment.
    assert load_config(source, allow_insecure=True).allow_insecure_files is True
    monkeypatch.setenv("OHM_ALLOW_INSECURE_CONFIG", "1")
    assert load_config(source).orchestrator_restart_command is not None


def test_loose_pyproject_without_ohm_settings_is_not_a_problem(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\n')
    (tmp_path / "pyproject.toml").chmod(0o666)
    assert load_config(None).health_check_interval == 30.0


def test_cli_refuses_untrusted_config(tmp_path: Path, data_dir: Path) -> None:
    conf = tmp_path / "ohm.toml"
    conf.write_text("health_check_interval = 5\n")
    conf.chmod(0o666)
    env = python_env()
    env.pop("OHM_ALLOW_INSECURE_CONFIG", None)
    out = subprocess.run(
        [PY, "-m", "ohm_tui", "check", "--config", str(conf), "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
    )
    assert out.returncode != 0
    assert f"config file {conf} is writable by" in out.stderr
    assert "refusing to trust it" in out.stderr
    assert "Traceback" not in out.stderr
    assert list(data_dir.iterdir()) == []


# ----------------------------------------------------------------- argv, never a shell
def _calls(tree: ast.AST) -> list[ast.Call]:
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call)]


def test_no_shell_anywhere_in_the_package() -> None:
    """No ``shell=True`` (nor os.system / os.popen, which are shells too) in ohm."""
    offenders: list[str] = []
    files = sorted((REPO / "ohm_tui").rglob("*.py"))
    assert len(files) > 20
    for path in files:
        text = path.read_text()
        if "shell=True" in text.replace(" ", ""):
            offenders.append(f"{path}: shell=True")
        for call in _calls(ast.parse(text)):
            for kw in call.keywords:
                if kw.arg == "shell" and not (
                    isinstance(kw.value, ast.Constant) and kw.value.value is False
                ):
                    offenders.append(f"{path}:{call.lineno}: shell={ast.unparse(kw.value)}")
            name = ast.unparse(call.func)
            if name in ("os.system", "os.popen", "subprocess.getoutput", "commands.getoutput"):
                offenders.append(f"{path}:{call.lineno}: {name}")
    assert offenders == []


def test_real_format_command_is_split_never_interpreted(
    orch: Orchestrator, ohm: MonitorFactory, tmp_path: Path
) -> None:
    """A command string from the state file full of shell syntax is split with shlex
    and run as argv: every metacharacter arrives as a literal argument."""
    marks = [tmp_path / f"m{i}" for i in range(5)]
    hostile = (
        f"printf '%s|' 'safe; touch {marks[0]}' $(touch {marks[1]}) `touch {marks[2]}` "
        f"&& touch {marks[3]} > {marks[4]}"
    )
    agent = orch.start("architect", "spec-20")
    doc = orch.document()
    doc["active_agents"][str(agent.pid)]["command"] = hostile
    orch.write(doc)
    mon = ohm()
    mon.check()
    agent.crash()
    wait_until(lambda: mon.check() and mon.crashes(), timeout=5)
    (res,) = [r for r in mon.auto_fix_issues() if r.action == "respawn"]
    assert res.ok, res.message
    ((argv_json, log_file),) = q(mon.config.database_path, "SELECT argv, log_file FROM ohm_agents")
    assert json.loads(argv_json) == shlex.split(hostile)
    wait_until(lambda: "|" in Path(log_file).read_text(), timeout=5)
    out = Path(log_file).read_text()
    assert f"safe; touch {marks[0]}|$(touch|" in out and f"`touch|{marks[2]}`|&&|" in out
    assert [m.exists() for m in marks] == [False] * 5


def test_hooks_get_argv_and_json_on_stdin_never_a_shell(
    orch: Orchestrator, ohm: MonitorFactory, tmp_path: Path
) -> None:
    out = tmp_path / "hook-input.json"
    marks = [tmp_path / f"hook-m{i}" for i in range(3)]
    hook = (
        f"{PY} -c 'import sys; open(sys.argv[1], \"w\").write(sys.stdin.read())' {out} "
        f"; touch {marks[0]}"
    )
    error = f"ImportError: cannot import name $(touch {marks[1]}) `touch {marks[2]}`"
    agent = orch.start("architect", "spec-20", argv=_marker_argv(tmp_path / "unused"))
    argv = [*agent.argv[:-1], error]
    agent = orch.start("architect", "spec-21", argv=argv)
    mon = ohm(bug_command=hook, notify_command=hook, max_respawn_attempts=0)
    mon.check()
    agent.crash()
    wait_until(lambda: mon.check() and mon.crashes(), timeout=5)
    mon.auto_fix_issues()
    assert mon.report_bugs_if_any()
    wait_until(out.exists, timeout=10)
    payload = json.loads(out.read_text())
    assert f"$(touch {marks[1]})" in json.dumps(payload)  # inert text, delivered as data
    assert [m.exists() for m in marks] == [False] * 3
    assert "hook_failed" not in event_kinds(mon.config.database_path)


# ----------------------------------------------------------------- text from agents
HOSTILE = (
    "\x1b]52;c;ZWNobyBwd25lZCB8IHNo\x07"  # OSC 52: write the operator's clipboard
    "\x1b]8;;https://evil.example/\x1b\\click me\x1b]8;;\x1b\\"  # OSC 8: a hidden link
    "\x1b[2J\x1b[H\x1b[10;10H\x1b[1A\x1b[?1049h"  # CSI: clear, home, move, alt screen
    "\x1b[31;1mred\x1b[0m"  # CSI SGR
    "\x9b2J\x9d0;title\x9c\x85\x90q\x9c"  # C1 forms: CSI, OSC, NEL, DCS
    "\x1bP1$qm\x1b\\\x1b7\x1b8\x1bc\x07\x08\x00\x7f"  # DCS, save/restore, reset, BEL, BS
)


def _inert(text: str) -> bool:
    return not any(
        c == "\x1b" or (ord(c) < 32 and c not in "\t\n") or 0x7F <= ord(c) <= 0x9F for c in text
    )


def test_sanitize_makes_escape_sequences_inert() -> None:
    clean = logtail.sanitize("before " + HOSTILE + " after [bold]markup[/] [link=x]y[/link]")
    assert _inert(clean), repr(clean)
    assert clean.startswith("before ") and clean.endswith("[link=x]y[/link]")
    assert "click me" in clean and "red" in clean  # the words stay, the effects go
    assert "52;" not in clean and "evil.example" not in clean and "[2J" not in clean


def test_agent_text_is_inert_everywhere_it_is_kept(orch: Orchestrator, ohm: MonitorFactory) -> None:
    error = "ImportError: cannot import name 'X'" + HOSTILE.replace("\x00", "")
    agent = orch.start("architect", "spec-20")
    argv = [*agent.argv[:-1], error]
    agent = orch.start("architect", "spec-21", argv=argv)
    with open(agent.log, "a") as fh:
        fh.write("2025-10-19 19:43:20,1 - agent - ERROR - " + HOSTILE + "\n")
    mon = ohm(max_respawn_attempts=0)
    mon.check()
    agent.crash()
    wait_until(lambda: mon.check() and mon.crashes(), timeout=5)
    mon.auto_fix_issues()
    mon.report_bugs_if_any()
    (crash,) = mon.crashes()
    for field in ("error_message", "stack_trace", "root_cause", "log_excerpt"):
        value = getattr(crash, field) or ""
        assert _inert(value), (field, value)
    (bug,) = mon.bugs()
    for value in (bug.title, bug.description, bug.root_cause or "", bug.stack_trace or ""):
        assert _inert(value), value
    ticket = mon.config.tickets_path / f"{bug.label}.md"  # type: ignore[operator]
    assert _inert(ticket.read_text())
    for ev in mon.events(limit=500):
        assert _inert(ev.message), ev.message
    assert _inert(mon.agent_log_tail(agent.key))
    for view in mon.snapshot().agents:
        assert _inert(view.last_log_line or "")


# ----------------------------------------------------------------- inside their folders
def _files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


def test_hostile_task_id_and_title_stay_inside_their_folders(
    orch: Orchestrator, ohm: MonitorFactory, tmp_path: Path
) -> None:
    before = _files(tmp_path)
    evil_task = "../../../../etc/ohm-x"
    evil_type = "../../tmp/evil/../agent"
    argv = [*orch.start("w", "t").argv[:-1], "ImportError: cannot import name 'x' from 'y'"]
    agent = orch.start(slug(evil_type), slug(evil_task), argv=argv)
    doc = orch.document()
    entry = doc["active_agents"][str(agent.pid)]
    entry.update(task_id=evil_task, agent_type=evil_type)
    entry["started_at"] = timeutil.iso_local_naive(agent.started)
    orch.write(doc)
    mon = ohm(max_respawn_attempts=1)
    mon.check()
    agent.crash()
    wait_until(lambda: mon.check() and mon.crashes(), timeout=5)
    mon.auto_fix_issues()
    mon.report_bugs_if_any()
    filed = mon.file_bug("../../../../tmp/ohm-pwned/BUG-999 / title \\ with ..", "Low")
    assert filed.bug_number >= 1

    data = mon.config.path(".")
    allowed = [
        mon.config.log_dir_path.resolve(),
        mon.config.tickets_path.resolve(),  # type: ignore[union-attr]
        mon.config.exits_dir_path.resolve(),
        (data / "orchestrator").resolve(),
        (data / "logs").resolve(),
    ]
    for new in _files(tmp_path) - before:
        path = new.resolve()
        if path.parent == data.resolve() and path.name.startswith("orchestrator.db"):
            continue
        assert any(path.is_relative_to(root) for root in allowed), path
    tickets = sorted(p.name for p in mon.config.tickets_path.iterdir())  # type: ignore[union-attr]
    assert tickets and all(n.startswith("BUG-") and n.endswith(".md") for n in tickets)
    ((log_file,),) = q(mon.config.database_path, "SELECT log_file FROM ohm_agents")
    assert Path(log_file).resolve().parent == mon.config.log_dir_path.resolve()
    assert os.sep not in Path(log_file).name and not Path(log_file).name.startswith(".")
    assert not Path("/etc/ohm-x").exists() and not Path("/tmp/ohm-pwned").exists()
    assert not (tmp_path.parent / "etc").exists()
