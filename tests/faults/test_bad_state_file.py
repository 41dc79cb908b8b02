"""``agent_state.json`` damaged or odd: degraded with a clear issue, the last good view
kept, nothing done because of it, and recovery on its own once the file is good.

Each case starts from a good file with three entries: a live agent A, a live
agent B that crashes while the file is damaged, and a long-dead entry C. While
the file is bad, full cycles run (check, fixes, bugs): nothing may be
respawned, cleaned, recorded or killed, and the file is never written. Once the
good file is back, B's crash (which happened meanwhile) is recorded exactly
once and C is cleaned: nothing was lost either.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.faults.kit import (
    PY,
    Agent,
    MonitorFactory,
    Orchestrator,
    base_config,
    count,
    event_kinds,
    python_env,
    q,
)

DEAD_PID = 2_000_000_001  # above any pid_max: never a live process
ACTIONS = {"respawned", "respawn_failed", "cleaned", "gave_up", "crashed", "stopped"}


def _damage_bytes(data: bytes) -> Callable[[Path, bytes], None]:
    def apply(path: Path, good: bytes) -> None:
        path.write_bytes(data)

    return apply


def _truncate(path: Path, good: bytes) -> None:
    path.write_bytes(good[: len(good) // 2])  # the orchestrator died mid-write


def _huge(path: Path, good: bytes) -> None:
    # Still valid JSON (trailing whitespace), but 50 MB: the size is the fault.
    with open(path, "wb") as fh:
        fh.write(good)
        fh.write(b" " * (50 * 1024 * 1024))


def _directory(path: Path, good: bytes) -> None:
    path.unlink()
    path.mkdir()


def _missing(path: Path, good: bytes) -> None:
    path.unlink()


def _mode_000(path: Path, good: bytes) -> None:
    path.chmod(0)


CASES: dict[str, tuple[Callable[[Path, bytes], None], str]] = {
    "empty": (_damage_bytes(b""), "file is empty"),
    "truncated_mid_write": (_truncate, "truncated JSON"),
    "not_json": (_damage_bytes(b"<html>502 Bad Gateway</html>\n"), "not valid JSON"),
    "wrong_shape_list": (_damage_bytes(b"[1, 2, 3]"), "expected a JSON object at top level"),
    "wrong_shape_active_agents_list": (
        _damage_bytes(b'{"active_agents": [14993, 14994], "completed_agents": []}'),
        "active_agents must be an object keyed by PID",
    ),
    "size_50mb": (_huge, "file is too large (50.0 MiB"),
    "replaced_by_directory": (_directory, "is a directory"),
    "missing": (_missing, "file is missing"),
    "unreadable_mode_000": (_mode_000, "permission denied"),
}


class InProcess:
    """Cycles of a monitor in this process."""

    def __init__(self, factory: MonitorFactory, **extra: Any) -> None:
        self.mon = factory(**extra)

    def cycle(self, *, fix: bool = True) -> dict[str, Any]:
        report = self.mon.check()
        if fix:
            self.mon.auto_fix_issues(report)
            self.mon.report_bugs_if_any(report)
        snap = self.mon.snapshot()
        return {
            "status": report.status,
            "issues": [[i.type, i.error] for i in report.issues],
            "agents": [[a.key, a.pid, a.status] for a in snap.agents],
        }

    def close(self) -> None:
        pass


class Unprivileged:
    """Cycles of a monitor in a child without the capability to bypass file modes.

    Tests run as root here, and root reads a mode-000 file anyway; ``setpriv``
    drops CAP_DAC_OVERRIDE/CAP_DAC_READ_SEARCH so the monitor meets the fault as
    any ordinary user would.
    """

    def __init__(self, data_dir: Path, **extra: Any) -> None:
        prefix: list[str] = []
        if os.geteuid() == 0:
            setpriv = shutil.which("setpriv")
            if setpriv is None:
                pytest.skip("running as root without setpriv: cannot make a file unreadable")
            caps = "-dac_override,-dac_read_search"
            prefix = [setpriv, f"--inh-caps={caps}", f"--bounding-set={caps}"]
        cfg = json.dumps(base_config(data_dir, **extra))
        self.proc = subprocess.Popen(
            [*prefix, PY, "-m", "tests.faults.driver", cfg, "steps"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=python_env(),
        )

    def cycle(self, *, fix: bool = True) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write("cycle\n" if fix else "check\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        assert line, "the monitor process died"
        result: dict[str, Any] = json.loads(line)
        return result

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            if self.proc.stdout is not None:
                self.proc.stdout.close()


@pytest.fixture
def three_agents(orch: Orchestrator) -> Iterator[tuple[Agent, Agent, bytes]]:
    a = orch.start("architect", "spec-a")
    b = orch.start("code_developer", "impl-b")
    orch.extra_entries[str(DEAD_PID)] = {
        "pid": DEAD_PID,
        "agent_type": "code_developer",
        "task_id": "impl-c",
        "command": "poetry run code-developer --task impl-c",
        "started_at": "2025-10-19T19:43:20.588402",
        "status": "running",
    }
    good = orch.write()
    yield a, b, good


def _state_error(result: dict[str, Any]) -> list[str]:
    return [err for typ, err in result["issues"] if typ == "state_file_error"]


def _keys(result: dict[str, Any]) -> set[str]:
    return {k for k, _, _ in result["agents"]}


@pytest.mark.parametrize("case", list(CASES))
def test_damaged_agent_state_degrades_keeps_view_and_does_nothing(
    case: str,
    orch: Orchestrator,
    ohm: MonitorFactory,
    data_dir: Path,
    three_agents: tuple[Agent, Agent, bytes],
) -> None:
    a, b, good = three_agents
    damage, problem = CASES[case]
    extra = {"respawn_backoff_base": 60.0}
    runner: InProcess | Unprivileged
    if case == "unreadable_mode_000":
        runner = Unprivileged(data_dir, **extra)
    else:
        runner = InProcess(ohm, **extra)
    path = orch.state_path
    try:
        first = runner.cycle(fix=False)
        assert {a.key, b.key} <= _keys(first)
        assert not _state_error(first)

        damage(path, good)
        before = path.read_bytes() if path.is_file() and case != "unreadable_mode_000" else None
        assert b.crash() == 1  # B dies while its entry cannot be read

        for _ in range(3):
            bad = runner.cycle()
            assert bad["status"] == "degraded", bad
            errors = _state_error(bad)
            assert errors, bad["issues"]
            assert any(str(path) in e and problem in e for e in errors), errors
            # The last good view is kept: both agents are still on screen.
            shown = {k: s for k, _, s in bad["agents"]}
            assert shown.get(a.key) == "running"
            assert b.key in shown

        # Nothing was done because of the bad file.
        db_path = data_dir / "orchestrator.db"
        assert count(db_path, "SELECT COUNT(*) FROM agent_crashes") == 0
        assert count(db_path, "SELECT COUNT(*) FROM ohm_agents") == 0
        assert not ACTIONS & set(event_kinds(db_path))
        assert a.alive()
        if before is not None:
            assert path.read_bytes() == before  # never rewritten
        elif case == "replaced_by_directory":
            assert path.is_dir()
        elif case == "missing":
            assert not path.exists()  # not recreated either

        # Recovery: the good file comes back; nothing that happened is lost.
        if path.is_dir():
            path.rmdir()
        if path.exists():
            path.chmod(0o644)
        path.write_bytes(good)
        healed = runner.cycle()
        assert not _state_error(healed), healed["issues"]
        crashes = [r[0] for r in q(db_path, "SELECT agent_key FROM agent_crashes")]
        assert crashes == [b.key]  # B's crash, once
        assert a.alive()
        doc = json.loads(path.read_text())
        assert str(a.pid) in doc["active_agents"]
        assert str(DEAD_PID) not in doc["active_agents"]  # C is cleaned now, not before
        assert any(e.get("pid") == DEAD_PID for e in doc["completed_agents"])
    finally:
        runner.close()


def test_malformed_entries_are_skipped_named_and_left_untouched(
    orch: Orchestrator, ohm: MonitorFactory, data_dir: Path
) -> None:
    """Wrong types inside one entry (a PID as words, a number as command): that entry is
    named and left alone; the rest of the file still works, and ohm's own writes keep it."""
    a = orch.start("architect", "spec-a")
    doc = orch.document()
    doc["active_agents"]["fourteen"] = {"pid": "fourteen", "agent_type": "x", "status": "running"}
    doc["active_agents"]["14995"] = {"pid": 14995, "command": 42, "status": "running"}
    doc["active_agents"]["14996"] = "not an object"
    doc["active_agents"][str(DEAD_PID)] = {
        "pid": str(DEAD_PID),  # a PID as text is still a PID
        "agent_type": "code_developer",
        "task_id": "impl-c",
        "command": "poetry run code-developer",
        "started_at": "2025-10-19T19:43:20",
        "status": "running",
    }
    orch.write(doc)
    mon = ohm()
    report = mon.check()
    errors = [i.error for i in report.issues if i.type == "state_file_error"]
    assert report.status == "degraded"
    assert any("'fourteen'" in e and "is not a process id" in e for e in errors), errors
    assert any("'14995'" in e and "command must be text or a list" in e for e in errors), errors
    assert any("'14996'" in e and "entry is not an object" in e for e in errors), errors
    assert all(str(orch.state_path) in e for e in errors)
    agents = {v.key: v for v in mon.snapshot().agents}
    assert agents[a.key].status == "running"

    mon.auto_fix_issues(report)
    after = json.loads(orch.state_path.read_text())
    for key in ("fourteen", "14995", "14996"):
        assert after["active_agents"][key] == doc["active_agents"][key]  # left exactly as it was
    assert str(DEAD_PID) not in after["active_agents"]  # the good dead entry was cleaned
    assert after["active_agents"][str(a.pid)] == doc["active_agents"][str(a.pid)]
    assert a.alive()
    db_path = data_dir / "orchestrator.db"
    assert count(db_path, "SELECT COUNT(*) FROM agent_crashes") == 0
    assert count(db_path, "SELECT COUNT(*) FROM ohm_agents") == 0
