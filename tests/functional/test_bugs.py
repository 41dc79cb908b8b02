"""The bug tracker on a real database, real ticket files and real hook commands."""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

import ohm_tui
from ohm_tui.engine.bugs.tracker import BugDedupError, BugTracker, fenced, render_ticket
from ohm_tui.engine.config import Config, load_config
from ohm_tui.engine.store import Store
from ohm_tui.engine.timeutil import iso_local_naive

PKG_ROOT = str(Path(ohm_tui.__file__).resolve().parent.parent)
NOW = 1_760_950_000.0


def wait_until(pred: Callable[[], bool], timeout: float = 10.0, interval: float = 0.01) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(interval)


def make_config(tmp_path: Path, **kw: Any) -> Config:
    return load_config({"data_dir": str(tmp_path / "data"), **kw}, search_cwd=False)


@pytest.fixture
def cfg(tmp_path: Path) -> Config:
    return make_config(tmp_path, critical_crash_count=2)


@pytest.fixture
def store(cfg: Config) -> Iterator[Store]:
    s = Store(cfg.database_path)
    yield s
    s.close()


def report(tracker: BugTracker, **kw: Any) -> Any:
    args: dict[str, Any] = {
        "issue_type": "agent_crash",
        "fingerprint": "fp-import",
        "title": "architect crashes with ImportError",
        "description": "architect exits 1 right after spawn",
        "priority": "High",
        "category": "crash",
        "root_cause": "Missing SkillNames export",
        "related_files": ["coffee_maker/skill_loader.py"],
        "reproduction_steps": ["Start orchestrator", "Spawn architect"],
        "error_logs": "ImportError: cannot import name 'SkillNames'",
        "stack_trace": "Traceback (most recent call last):\nImportError: x",
        "now": NOW,
    }
    args.update(kw)
    return tracker.report(**args)


def event_kinds(store: Store) -> list[str]:
    return [e.kind for e in reversed(store.list_events(limit=1000))]


# ----------------------------------------------------------------- dedup and rate limit


def test_same_fingerprint_is_one_bug_escalated_to_critical(store: Store, cfg: Config) -> None:
    tracker = BugTracker(store, cfg)
    first = report(tracker)
    second = report(tracker, now=NOW + 60)
    third = report(tracker, now=NOW + 120)
    assert (first.created, first.updated, first.bug_number) == (True, False, 1)
    assert (second.created, second.updated, second.bug_number) == (False, True, 1)
    assert (third.created, third.updated, third.bug_number) == (False, True, 1)
    bugs = store.list_bugs(status="all")
    assert len(bugs) == 1
    bug = bugs[0]
    assert bug.occurrences == 3
    assert bug.priority == "Critical"  # 3 occurrences > critical_crash_count (2)
    assert bug.last_seen == NOW + 120
    assert bug.reporter == "ohm" and bug.assigned_to == "code_developer"
    assert event_kinds(store) == ["bug_filed", "bug_priority"]
    ticket = (cfg.tickets_path or Path()) / "BUG-001.md"
    assert "**Priority**: Critical" in ticket.read_text()


def test_priority_is_raised_never_lowered(store: Store, tmp_path: Path) -> None:
    tracker = BugTracker(store, make_config(tmp_path))
    report(tracker, priority="Medium")
    report(tracker, priority="Low", now=NOW + 1)
    assert store.get_bug(1).priority == "Medium"  # type: ignore[union-attr]
    report(tracker, priority="High", now=NOW + 2)
    assert store.get_bug(1).priority == "High"  # type: ignore[union-attr]
    report(tracker, priority="Medium", now=NOW + 3)
    assert store.get_bug(1).priority == "High"  # type: ignore[union-attr]


def test_priority_for(store: Store, cfg: Config) -> None:
    tracker = BugTracker(store, cfg)
    assert tracker.priority_for("ImportError", 1) == "High"
    assert tracker.priority_for("TimeoutError", 1) == "Low"
    assert tracker.priority_for("KeyError", 1) == "Medium"
    assert tracker.priority_for(None, 1, default="Low") == "Low"
    assert tracker.priority_for("TimeoutError", 3) == "Critical"  # > critical_crash_count


def test_rate_limit_one_new_bug_per_issue_type_per_hour(store: Store, cfg: Config) -> None:
    tracker = BugTracker(store, cfg)
    assert report(tracker, fingerprint="fp-a").created
    limited = report(tracker, fingerprint="fp-b", now=NOW + 600)
    assert limited.rate_limited and not limited.created and limited.bug_number is None
    assert "bug_rate_limited" in event_kinds(store)
    # Another issue type is not held back.
    assert report(tracker, fingerprint="fp-z", issue_type="zombie", now=NOW + 601).created
    # The known fingerprint still counts while the limit holds.
    assert report(tracker, fingerprint="fp-a", now=NOW + 700).updated
    later = report(tracker, fingerprint="fp-b", now=NOW + cfg.bug_rate_limit + 1)
    assert later.created and later.bug_number == 3
    assert store.count_open_bugs() == 3


def test_closed_bug_does_not_absorb_new_occurrences(store: Store, tmp_path: Path) -> None:
    tracker = BugTracker(store, make_config(tmp_path, bug_rate_limit=0))
    report(tracker)
    tracker.close(1)
    again = report(tracker, now=NOW + 5)
    assert again.created and again.bug_number == 2


def test_dedup_failure_raises_and_files_nothing(store: Store, cfg: Config) -> None:
    tracker = BugTracker(store, cfg)
    other = sqlite3.connect(cfg.database_path)
    other.execute("DROP TABLE ohm_bug_meta")
    other.commit()
    other.close()
    with pytest.raises(BugDedupError) as err:
        report(tracker)
    assert "fp-import" in str(err.value)
    conn = sqlite3.connect(cfg.database_path)
    assert conn.execute("SELECT COUNT(*) FROM bugs").fetchone()[0] == 0
    conn.close()


def test_dedup_on_a_closed_store_raises(store: Store, cfg: Config) -> None:
    tracker = BugTracker(store, cfg)
    store.close()
    with pytest.raises(BugDedupError):
        report(tracker)


RACER = """
import json, os, sys, time
from ohm_tui.engine.bugs.tracker import BugTracker
from ohm_tui.engine.config import load_config
from ohm_tui.engine.store import Store
cfg = load_config({"data_dir": sys.argv[1]}, search_cwd=False)
tracker = BugTracker(Store(cfg.database_path), cfg)
print("ready", flush=True)
while not os.path.exists(sys.argv[2]):
    time.sleep(0.001)
out = tracker.report(issue_type="agent_crash", fingerprint="fp-race", title="race",
                     description="d", priority="High", category="crash", now=1760950000.0)
print(json.dumps({"created": out.created, "updated": out.updated, "n": out.bug_number}))
"""


def test_processes_racing_on_one_fingerprint_file_one_bug(
    store: Store, cfg: Config, tmp_path: Path
) -> None:
    go = tmp_path / "go"
    env = dict(os.environ, PYTHONPATH=PKG_ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(RACER), cfg.data_dir, str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(4)
    ]
    try:
        for p in racers:
            assert p.stdout is not None and p.stdout.readline().strip() == "ready"
        go.touch()
        results = []
        for p in racers:
            out, err = p.communicate(timeout=60)
            assert p.returncode == 0, err
            results.append(json.loads(out))
    finally:
        for p in racers:
            if p.poll() is None:
                p.kill()
            p.wait(timeout=10)
    assert sum(r["created"] for r in results) == 1
    assert sum(r["updated"] for r in results) == 3
    assert {r["n"] for r in results} == {1}
    [bug] = store.list_bugs(status="all")
    assert bug.occurrences == 4


# ----------------------------------------------------------------- tickets


def test_ticket_header_matches_the_real_tracker(store: Store, cfg: Config) -> None:
    tracker = BugTracker(store, cfg)
    report(tracker)
    text = ((cfg.tickets_path or Path()) / "BUG-001.md").read_text()
    lines = text.splitlines()
    bug = store.get_bug(1)
    assert bug is not None
    assert lines[:8] == [
        "# BUG-001: architect crashes with ImportError",
        "",
        "**Status**: \U0001f534 Open",
        "**Priority**: High",
        f"**Created**: {iso_local_naive(NOW)}",  # the tracker's own (naive local) format
        "**Reporter**: ohm",
        "**Assigned**: code_developer",
        "**Category**: crash",
    ]
    for section in ("## Description", "## Root Cause", "## Reproduction Steps", "## Stack Trace"):
        assert section in lines
    assert "1. Start orchestrator" in lines
    tracker.close(1)
    assert "**Status**: \u26ab Closed" in ((cfg.tickets_path or Path()) / "BUG-001.md").read_text()


def test_real_tracker_ticket_keeps_its_content(store: Store, cfg: Config) -> None:
    """Closing a bug the real tracker filed changes its Status line and nothing else."""
    conn = sqlite3.connect(cfg.database_path)
    conn.execute(
        "INSERT INTO bugs (bug_number, title, description, priority, status, reporter, "
        "created_at, updated_at) VALUES (5, 'Spec loop hangs', 'd', 'High', 'open', "
        "'assistant', '2025-10-19T19:43:20.588402', '2025-10-19T19:43:20.588402')"
    )
    conn.commit()
    conn.close()
    tickets = cfg.tickets_path
    assert tickets is not None
    tickets.mkdir(parents=True)
    original = (
        "# BUG-005: Spec loop hangs\n\n**Status**: \U0001f534 Open\n**Priority**: High\n"
        "**Created**: 2025-10-19T19:43:20.588402\n**Reporter**: assistant\n"
        "**Assigned**: code_developer\n\n## Analysis (code_developer)\n\nIt is the lock.\n"
    )
    (tickets / "BUG-005.md").write_text(original)
    tracker = BugTracker(store, cfg)
    tracker.close(5)
    tracker.set_priority(5, "Low")
    text = (tickets / "BUG-005.md").read_text()
    assert text == original.replace("\U0001f534 Open", "\u26ab Closed").replace(
        "**Priority**: High", "**Priority**: Low"
    )


def fenced_blocks(text: str) -> list[list[str]]:
    """Parse fenced blocks as CommonMark does: a fence closes only with >= as many backticks."""
    blocks: list[list[str]] = []
    fence = 0
    body: list[str] = []
    for line in text.splitlines():
        run = len(line) - len(line.lstrip("`"))
        if fence == 0 and run >= 3:
            fence, body = run, []
        elif fence and run >= fence and line.strip("`") == "":
            blocks.append(body)
            fence = 0
        elif fence:
            body.append(line)
    assert fence == 0, "a fence was left open"
    return blocks


def test_stack_trace_with_backticks_stays_fenced(store: Store, cfg: Config) -> None:
    trace = "Traceback:\n```\n# Escaped!\n[click](http://x)\n````\nImportError: boom"
    tracker = BugTracker(store, cfg)
    report(tracker, stack_trace=trace, description="desc with ``` inside")
    text = ((cfg.tickets_path or Path()) / "BUG-001.md").read_text()
    blocks = fenced_blocks(text)
    assert trace.splitlines() in blocks
    assert ["desc with ``` inside"] in blocks
    # The heading inside the trace is not a heading of the ticket.
    headings = [line for line in text.splitlines() if line.startswith("#")]
    assert "# Escaped!" in text and not any(h == "# Escaped!" for h in _outside(text, headings))
    assert fenced("a\n`````b").startswith("``````\n")


def _outside(text: str, headings: list[str]) -> list[str]:
    inside = {line for block in fenced_blocks(text) for line in block}
    return [h for h in headings if h not in inside]


def test_ticket_path_is_the_number_only(store: Store, cfg: Config, tmp_path: Path) -> None:
    tracker = BugTracker(store, cfg)
    evil = "../../etc/x"
    report(tracker, title=evil, description=evil, fingerprint="../../../x")
    bug = tracker.file_manual(title="../../../../tmp/pwned\nline", priority="Low")
    tickets = cfg.tickets_path
    assert tickets is not None
    assert sorted(p.name for p in tickets.iterdir()) == ["BUG-001.md", "BUG-002.md"]
    produced = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    assert all(p.startswith(("data/", "tickets/")) for p in produced), produced
    assert not (tmp_path / "etc").exists()
    text = (tickets / "BUG-002.md").read_text()
    assert text.splitlines()[0] == "# BUG-002: ../../../../tmp/pwned line"
    assert bug.label == "BUG-002"
    with pytest.raises(ValueError):
        tracker.ticket_path(-1)


def test_render_ticket_strips_terminal_escapes(store: Store, cfg: Config) -> None:
    tracker = BugTracker(store, cfg)
    report(tracker, title="bad \x1b[31mred\x1b[0m title", stack_trace="a\x1b]0;owned\x07b")
    bug = store.get_bug(1)
    assert bug is not None
    text = render_ticket(bug)
    assert "\x1b" not in text and "\x07" not in text
    assert text.startswith("# BUG-001: bad red title\n")


# ----------------------------------------------------------------- hook


def write_script(path: Path, body: str) -> Path:
    path.write_text(textwrap.dedent(body))
    return path


def test_hook_receives_bug_json(tmp_path: Path) -> None:
    out = tmp_path / "hook-out.json"
    script = write_script(
        tmp_path / "hook.py",
        """
        import sys
        data = sys.stdin.read()
        open(sys.argv[1], "w").write(data)
        """,
    )
    cfg = make_config(tmp_path, bug_command=[sys.executable, str(script), str(out)])
    with Store(cfg.database_path) as store:
        tracker = BugTracker(store, cfg)
        report(tracker, metadata={"task_id": "spec-20"})
        payload = json.loads(out.read_text())
        assert payload["bug_number"] == 1
        assert payload["label"] == "BUG-001"
        assert payload["title"] == "architect crashes with ImportError"
        assert payload["priority"] == "High"
        assert payload["metadata"] == {"task_id": "spec-20"}
        assert payload["event"] == "bug_filed"
        # Updates of the same bug do not run the hook again.
        out.unlink()
        report(tracker, now=NOW + 1)
        assert not out.exists()
        assert "hook_failed" not in event_kinds(store)


def test_failing_hooks_lose_nothing(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    failing = write_script(
        tmp_path / "fail.py", "import sys\nsys.stderr.write('no tracker\\n')\nsys.exit(1)\n"
    )
    pidfile = tmp_path / "sleeper.pid"
    sleeper = write_script(
        tmp_path / "sleep.py",
        f"""
        import os, time
        open({str(pidfile)!r}, "w").write(str(os.getpid()))
        time.sleep(60)
        """,
    )
    cases = [
        ([sys.executable, str(failing)], "exited with status 1"),
        ([sys.executable, str(sleeper)], "timed out"),
        ([str(tmp_path / "no-such-hook")], "cannot run"),
    ]
    for i, (argv, why) in enumerate(cases):
        cfg = make_config(
            tmp_path / f"case{i}", bug_command=argv, bug_command_timeout=0.5, bug_rate_limit=0
        )
        with Store(cfg.database_path) as store:
            tracker = BugTracker(store, cfg)
            caplog.clear()
            started = time.monotonic()
            with caplog.at_level(logging.WARNING, logger="ohm.bugs"):
                outcome = report(tracker)
            assert time.monotonic() - started < 5
            assert outcome.created and store.get_bug(1) is not None
            [failed] = [e for e in store.list_events() if e.kind == "hook_failed"]
            assert why in failed.message and failed.bug_number == 1
            assert any(why in r.getMessage() for r in caplog.records if r.name == "ohm.bugs")
            assert ((cfg.tickets_path or Path()) / "BUG-001.md").exists()
    # The sleeping hook was killed, not left behind.
    pid = int(pidfile.read_text())
    wait_until(lambda: not psutil.pid_exists(pid) or psutil.Process(pid).status() == "zombie")
    assert "no tracker" in store_event_output(tmp_path / "case0")


def store_event_output(data_dir: Path) -> str:
    with Store(data_dir / "data" / "orchestrator.db") as store:
        [failed] = [e for e in store.list_events() if e.kind == "hook_failed"]
        return str(store.event_data(failed.event_id).get("output"))


# ----------------------------------------------------------------- manual actions


def test_manual_file_close_reopen_priority(store: Store, cfg: Config) -> None:
    tracker = BugTracker(store, cfg)
    report(tracker)  # the rate limit does not apply to people
    bug = tracker.file_manual(
        title="  Console freezes  ",
        priority="Low",
        description="when resizing",
        related={"related_files": ["ohm_tui/tui/app.py"], "task_id": "x"},
    )
    assert (bug.bug_number, bug.title, bug.priority, bug.category) == (
        2,
        "Console freezes",
        "Low",
        "manual",
    )
    assert bug.related_files == ["ohm_tui/tui/app.py"]
    assert tracker.close(2).status == "closed"
    assert store.count_open_bugs() == 1
    assert tracker.reopen(2).status == "open"
    assert tracker.set_priority(2, "Critical").priority == "Critical"
    assert event_kinds(store) == [
        "bug_filed",
        "bug_filed",
        "bug_closed",
        "bug_reopened",
        "bug_priority",
    ]
    text = ((cfg.tickets_path or Path()) / "BUG-002.md").read_text()
    assert "**Priority**: Critical" in text and "**Status**: \U0001f534 Open" in text
    with pytest.raises(ValueError):
        tracker.file_manual(title="x", priority="Urgent")
    with pytest.raises(ValueError):
        tracker.file_manual(title="  ", priority="Low")
    with pytest.raises(ValueError):
        tracker.set_priority(2, "urgent")
    for action in (tracker.close, tracker.reopen):
        with pytest.raises(KeyError, match="unknown bug BUG-042"):
            action(42)
    with pytest.raises(KeyError, match="unknown bug BUG-042"):
        tracker.set_priority(42, "Low")


def test_no_tickets_dir_means_no_tickets(store: Store, tmp_path: Path) -> None:
    cfg = make_config(tmp_path, tickets_dir="")
    tracker = BugTracker(store, cfg)
    assert report(tracker).created
    assert tracker.ticket_path(1) is None
    assert not (tmp_path / "data" / "tickets").exists()
