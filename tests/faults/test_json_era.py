"""The JSON era as it really behaved, driven by a fake era-1 orchestrator
(``tests/faults/era1.py``): in-place unlocked rewrites, agents that stay zombies of
the orchestrator until it next spawns, and a cleanup that relabels every gone PID
``completed`` with no exit code.

A watched agent that dies is classified (crash or clean exit, by the exit status
its zombie still carries) before anything cleans its entry.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest

from ohm_tui import OrchestratorHealthMonitor
from tests.faults.kit import (
    REPO,
    MonitorFactory,
    crash_argv,
    crash_once_argv,
    event_kinds,
    python_env,
)
from tests.helpers import wait_until

# Waits on stdin, then exits with the code given as $1.
EXIT_WITH = ["/bin/sh", "-c", 'read _x; exit "$1"', "era1-agent"]


@dataclass
class Era1Driver:
    """Talks to the fake era-1 orchestrator process."""

    proc: subprocess.Popen[str]
    tag: str
    data_dir: Path

    def cmd(self, **cmd: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        reply: dict[str, Any] = json.loads(self.proc.stdout.readline())
        return reply

    def spawn(
        self, argv: list[str], agent_type: str = "code_developer", task: str = "impl-1"
    ) -> int:
        return int(self.cmd(op="spawn", agent_type=agent_type, task_id=task, argv=argv)["pid"])

    def release(self, pid: int) -> None:
        self.cmd(op="release", pid=pid)

    def cleanup(self) -> list[int]:
        return [int(p) for p in self.cmd(op="cleanup")["moved"]]

    @property
    def state(self) -> dict[str, Any]:
        doc: dict[str, Any] = json.loads(
            (self.data_dir / "orchestrator" / "agent_state.json").read_text()
        )
        return doc


@pytest.fixture
def era1(data_dir: Path) -> Iterator[Era1Driver]:
    tag = f"era1-{uuid.uuid4().hex[:8]}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.faults.era1", str(data_dir), tag, "orchestrator", "start"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env=python_env(),
    )
    assert proc.stdout is not None
    json.loads(proc.stdout.readline())  # ready
    try:
        yield Era1Driver(proc, tag, data_dir)
    finally:
        with contextlib.suppress(Exception):
            assert proc.stdin is not None
            proc.stdin.close()  # it kills and reaps its agents, then exits
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _monitor(ohm: MonitorFactory, era1: Era1Driver, **extra: Any) -> OrchestratorHealthMonitor:
    return ohm(orchestrator_match=[era1.tag, "start"], **extra)


def _is_zombie(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _key(mon: OrchestratorHealthMonitor, pid: int) -> str:
    return mon.resolve_agent(pid).key


def test_agent_dying_under_the_real_writer_is_a_crash_and_is_respawned(
    ohm: MonitorFactory, era1: Era1Driver
) -> None:
    """Background mode (console, ``ohm watch``): the death is seen at once, the zombie's
    exit status is the exit code, the crash is recorded and respawned, and no stale or
    zombie bug is filed for an ordinary agent death."""
    pid = era1.spawn(crash_once_argv())
    mon = _monitor(ohm, era1)
    mon.check()
    key = _key(mon, pid)
    mon.start()
    wait_until(lambda: pid in mon.watching(), message="agent watched")
    era1.release(pid)
    wait_until(lambda: any(c.agent_key == key for c in mon.crashes()), message="crash recorded")
    crash = next(c for c in mon.crashes() if c.agent_key == key)
    assert crash.exit_code == 1
    assert "RuntimeError" not in (crash.error_type or "")  # its output went to an unread pipe
    wait_until(lambda: "respawned" in event_kinds(mon.config.database_path), message="respawn")
    mon.stop()
    titles = [b.title for b in mon.bugs("all")]
    assert not [t for t in titles if "Zombie" in t or "Stale" in t], titles
    completed = era1.state["completed_agents"]
    assert not [e for e in completed if "stale" in str(e.get("reason", ""))], completed


def test_zombie_is_dead_its_exit_status_is_the_exit_code(
    ohm: MonitorFactory, era1: Era1Driver
) -> None:
    """Check-driven: a zombie is never alive nor counted; a crash and a clean exit are
    told apart by the zombie's status, and reaping + the relabelling cleanup change
    nothing of that."""
    bad = era1.spawn([*EXIT_WITH, "3"], task="impl-bad")
    good = era1.spawn([*EXIT_WITH, "0"], task="impl-good")
    mon = _monitor(ohm, era1)
    assert mon.check().active_agents == 2
    bad_key, good_key = _key(mon, bad), _key(mon, good)
    era1.release(bad)
    era1.release(good)
    wait_until(lambda: _is_zombie(bad) and _is_zombie(good), message="both zombies")

    report = mon.check()
    assert report.active_agents == 0
    views = {a.key: a for a in mon.snapshot().agents}
    assert views[bad_key].status != "running" and views[good_key].status != "running"
    assert [(c.agent_key, c.exit_code) for c in mon.crashes()] == [(bad_key, 3)]
    assert not [i for i in report.issues if i.type == "zombie"], report.issues

    era1.spawn(["/bin/sh", "-c", "exec sleep 600"], task="impl-next")  # reaps both zombies
    wait_until(lambda: not _is_zombie(bad) and not _is_zombie(good), message="reaped")
    assert sorted(era1.cleanup()) == sorted([bad, good])
    for _ in range(3):
        report = mon.check()
        assert not [i for i in report.issues if i.type == "zombie"], report.issues
    assert [(c.agent_key, c.exit_code) for c in mon.crashes()] == [(bad_key, 3)]


def test_lingering_zombie_is_an_issue_then_a_bug_only_when_it_persists(
    ohm: MonitorFactory, era1: Era1Driver
) -> None:
    pid = era1.spawn([*EXIT_WITH, "0"])
    mon = _monitor(ohm, era1, zombie_issue_after=0.3, zombie_bug_after=3.0)
    mon.check()
    era1.release(pid)
    wait_until(lambda: _is_zombie(pid), message="zombie")
    first = mon.check()
    assert not [i for i in first.issues if i.type == "zombie"]

    def zombie_report() -> Any:
        r = mon.check()
        return r if [i for i in r.issues if i.type == "zombie"] else None

    wait_until(zombie_report, timeout=5, message="lingering zombie reported")
    report = zombie_report()
    assert report is not None
    (issue,) = [i for i in report.issues if i.type == "zombie"]
    assert issue.agent_pid == pid and issue.details["ppid"] == era1.proc.pid
    assert mon.report_bugs_if_any(report) == []  # an issue, not yet a bug

    def bug_filed() -> bool:
        mon.report_bugs_if_any(mon.check())
        return any("ombie" in b.title for b in mon.bugs("all"))

    wait_until(bug_filed, timeout=8, interval=0.1, message="zombie bug after bug threshold")
    assert era1.proc.poll() is None  # the parent is never touched


# One of the unlocked in-place writers, caught mid-write: it truncates the file and
# writes half, then finishes only once a reader has opened and closed the file (an
# inotify IN_CLOSE_NOWRITE), so the reader's first read is torn every time.
TORN_WRITER = r"""
import ctypes, os, select, sys
path, payload = sys.argv[1], open(sys.argv[2], "rb").read()
libc = ctypes.CDLL(None, use_errno=True)
ifd = libc.inotify_init1(os.O_CLOEXEC)
with open(path, "r+b") as fh:
    fh.truncate(0)
    fh.write(payload[: len(payload) // 2])
    fh.flush()
    libc.inotify_add_watch(ifd, path.encode(), 0x10)  # IN_CLOSE_NOWRITE
    print("half", flush=True)
    select.select([ifd], [], [], 10)
    fh.write(payload[len(payload) // 2 :])
    fh.flush()
print("done", flush=True)
"""


def test_torn_read_of_an_in_place_rewrite_is_retried(
    ohm: MonitorFactory, era1: Era1Driver, tmp_path: Path
) -> None:
    pid = era1.spawn(["/bin/sh", "-c", "exec sleep 600"])
    mon = _monitor(ohm, era1)
    assert mon.check().active_agents == 1
    state = era1.data_dir / "orchestrator" / "agent_state.json"
    payload = tmp_path / "next.json"
    payload.write_text(json.dumps(era1.state, indent=2))  # same agents, new bytes
    writer = subprocess.Popen(
        [sys.executable, "-c", TORN_WRITER, str(state), str(payload)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert writer.stdout is not None
        assert writer.stdout.readline().strip() == "half"
        report = mon.check()
        assert writer.stdout.readline().strip() == "done"  # it really was torn at first read
    finally:
        writer.kill() if writer.poll() is None else None
        writer.wait()
    assert not [i for i in report.issues if i.type == "state_file_error"], report.issues
    assert report.extra_metrics["state_file_ok"] is True
    assert report.active_agents == 1 and mon.resolve_agent(pid).pid == pid


def _wchan(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/wchan").read_text().strip()
    except OSError:
        return ""


def test_agent_blocked_writing_to_an_unread_pipe_is_reported(
    ohm: MonitorFactory, era1: Era1Driver
) -> None:
    """A real agent writes 200 KiB to the stdout pipe the orchestrator never reads."""
    writer = "import sys; sys.stdout.write('x' * 200_000); sys.stdout.flush()"
    pid = era1.spawn([sys.executable, "-c", writer], task="impl-chatty")
    quiet = era1.spawn(["/bin/sh", "-c", "exec sleep 600"], task="impl-quiet")
    wait_until(lambda: _wchan(pid) in ("pipe_write", "anon_pipe_write"), message="blocked")
    mon = _monitor(ohm, era1)
    first = mon.check()
    assert not [i for i in first.issues if i.type == "blocked_on_output"]  # one sighting
    report = mon.check()
    (issue,) = [i for i in report.issues if i.type == "blocked_on_output"]
    assert issue.agent_pid == pid and issue.task_id == "impl-chatty"
    assert issue.details["pipes"] == ["stdout", "stderr"]
    assert "full pipe nobody reads" in issue.error and "log file" in issue.error
    assert report.status == "degraded" and quiet != pid


# Era 1: the exit code read from an agent's zombie reaches its crash row, however the
# crash was first recorded (the crash detail and the agents table agree).


def _views(mon: OrchestratorHealthMonitor) -> dict[str, Any]:
    return {a.key: a for a in mon.snapshot(record=False).agents}


def test_background_crash_row_has_the_zombies_exit_code(
    ohm: MonitorFactory, era1: Era1Driver
) -> None:
    pids = [era1.spawn(crash_argv(), agent_type="architect", task=f"spec-{i}") for i in range(3)]
    mon = _monitor(ohm, era1, respawn_backoff_base=0.0, max_respawn_attempts=2)
    mon.check()
    keys = [_key(mon, p) for p in pids]
    mon.start()
    wait_until(lambda: set(pids) <= set(mon.watching()), message="agents watched")
    for p in pids:
        era1.release(p)
    wait_until(
        lambda: sum(e.kind == "gave_up" for e in mon.events(limit=1000)) >= 3,
        timeout=30,
        message="all given up",
    )
    mon.stop()
    mon.check()
    rows = {c.agent_key: c for c in mon.crashes()}
    views = _views(mon)
    for k in keys:
        assert rows[k].exit_code == 1, (k, rows[k])
    for c in rows.values():
        assert c.exit_code == 1, c
        v = views.get(c.agent_key)
        if v is not None:
            assert v.exit_code in (None, c.exit_code), (v, c)


def test_zombie_seen_then_cleaned_before_recording_keeps_its_exit_code(
    ohm: MonitorFactory, era1: Era1Driver
) -> None:
    """A look (``record=False``: ``ohm agents``, a face's first snapshot) reads the
    zombie's exit status; the orchestrator then reaps it and its cleanup books the entry
    ``completed`` with no exit code; the next recording check records the crash from the
    closed entry: with the exit code read from the zombie, as the agents row showed."""
    pid = era1.spawn(crash_argv(), agent_type="architect", task="spec-20")
    mon = _monitor(ohm, era1, auto_fix=False)
    mon.check()
    key = _key(mon, pid)
    era1.release(pid)
    wait_until(lambda: _is_zombie(pid), message="a zombie")
    mon.check(record=False)
    assert _views(mon)[key].exit_code == 1
    assert mon.crashes() == []
    era1.spawn(["/bin/sh", "-c", "exec sleep 600"], task="impl-next")  # reaps the zombie
    wait_until(lambda: not _is_zombie(pid), message="reaped")
    assert era1.cleanup() == [pid]
    mon.check()
    (crash,) = [c for c in mon.crashes() if c.agent_key == key]
    assert crash.exit_code == 1
