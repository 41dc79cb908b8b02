"""The disk is full, or the database is read-only: ohm says so clearly, and keeps
monitoring and showing live state; once the disk has room again nothing is lost.

Both faults are real: the state directory lives on its own small tmpfs, filled
to the last byte with a file, or remounted read-only. That needs root (mount);
elsewhere these cases are skipped, saying why.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sqlite3
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from ohm_tui import OrchestratorHealthMonitor
from ohm_tui.engine.model import HealthReport
from tests.faults.kit import MonitorFactory, Orchestrator, count, q
from tests.helpers import wait_until


def _mount(cmd: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=30)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MB tmpfs of its own; unmounted (lazily, agents may hold logs) at the end."""
    where = tmp_path / f"disk-{uuid.uuid4().hex[:6]}"
    where.mkdir()
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a small tmpfs (a real full / read-only disk)")
    done = _mount(["mount", "-t", "tmpfs", "-o", "size=2m,mode=0755", "tmpfs", str(where)])
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield where
    finally:
        _mount(["umount", "-l", str(where)])


def fill(disk: Path) -> Path:
    """Write a file until the file system says ENOSPC: the disk is really full."""
    filler = disk / "filler.bin"
    chunk = b"\0" * 65536
    with open(filler, "wb") as fh:
        try:
            while True:
                fh.write(chunk)
                fh.flush()
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    with contextlib.suppress(OSError), open(filler, "ab") as fh:  # the last few bytes too
        while True:
            fh.write(b"\0")
            fh.flush()
    return filler


def storage_errors(report: HealthReport) -> list[str]:
    return [i.error for i in report.issues if i.type == "storage_error"]


def live(mon: OrchestratorHealthMonitor) -> dict[str, str]:
    return {v.key: v.status for v in mon.snapshot().agents}


def test_disk_full_reported_monitoring_goes_on_nothing_lost(
    small_disk: Path, ohm: MonitorFactory
) -> None:
    data = small_disk / "data"
    orch = Orchestrator(data)
    try:
        a = orch.start("architect", "spec-a")
        b = orch.start("code_developer", "impl-b")
        ohm.data_dir = data
        mon = ohm(respawn_backoff_base=60.0)
        assert not storage_errors(mon.check())
        state_before = orch.state_path.read_bytes()
        filler = fill(small_disk)

        b.crash()
        for _ in range(3):
            report = mon.check()  # never raises
            mon.auto_fix_issues(report)
            mon.report_bugs_if_any(report)
            errors = storage_errors(report)
            assert errors and any("disk is full" in e for e in errors), report.issues
            assert report.status != "healthy"
            shown = live(mon)
            assert shown[a.key] == "running"  # live state, straight from the processes
            assert b.key in shown
        # ohm's own write to the state file failed cleanly: the file is as it was.
        assert orch.state_path.read_bytes() == state_before
        assert not [p for p in orch.state_dir.iterdir() if p.name.endswith(".tmp")]

        filler.unlink()  # room again
        wait_until(
            lambda: not storage_errors(mon.check()) and mon.crashes(),
            timeout=10,
            message="recovered",
        )
        (crash,) = mon.crashes()
        assert crash.agent_key == b.key  # the crash that happened meanwhile is on record
        assert count(mon.config.database_path, "SELECT COUNT(*) FROM health_checks") > 1
        with contextlib.closing(sqlite3.connect(mon.config.database_path)) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        orch.stop_all()


@pytest.fixture
def read_only_view(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """``(writable_dir, read_only_view_of_it)``: a read-only bind mount as root (the
    kernel refuses every write through it), or a chmod 555/444 tree otherwise."""
    rw = tmp_path / "dbdir"
    rw.mkdir()
    if os.geteuid() != 0:
        yield rw, rw  # the test makes it read-only with chmod (real for a non-root user)
        return
    ro = tmp_path / "dbdir-ro"
    ro.mkdir()
    done = _mount(["mount", "--bind", str(rw), str(ro)])
    if done.returncode != 0:
        pytest.skip(f"cannot bind-mount here: {done.stderr.strip()}")
    try:
        done = _mount(["mount", "-o", "remount,ro,bind", str(ro)])
        assert done.returncode == 0, done.stderr
        yield rw, ro
    finally:
        _mount(["umount", "-l", str(ro)])


def test_database_read_only_reported_monitoring_goes_on(
    read_only_view: tuple[Path, Path], ohm: MonitorFactory, orch: Orchestrator
) -> None:
    """A monitor starts on a database it cannot write (a read-only volume): it says
    so, shows live state all the same, and harms nothing; the writer it shares the
    database with goes on recording."""
    rw, ro = read_only_view
    a = orch.start("architect", "spec-a")
    b = orch.start("code_developer", "impl-b")
    writer = ohm(database=str(rw / "orchestrator.db"), respawn_backoff_base=60.0)
    assert not storage_errors(writer.check())
    if ro == rw:  # not root: take the write permission away instead
        (rw / "orchestrator.db").chmod(0o444)
        rw.chmod(0o555)
    state_before = orch.state_path.read_bytes()
    b.crash()
    blocked = ohm(database=str(ro / "orchestrator.db"), respawn_backoff_base=60.0)
    for _ in range(3):
        report = blocked.check()  # never raises
        blocked.auto_fix_issues(report)
        blocked.report_bugs_if_any(report)
        errors = storage_errors(report)
        assert errors and any("read-only" in e or "readonly" in e for e in errors), errors
        assert report.status != "healthy"
        shown = live(blocked)
        assert shown[a.key] == "running"
        assert b.key in shown
    assert not blocked.is_fixer()  # it cannot hold the lease: it only watches
    assert orch.state_path.read_bytes() == state_before  # and changes nothing
    if ro == rw:
        rw.chmod(0o755)
        (rw / "orchestrator.db").chmod(0o644)
    # The writer was never disturbed: it records the crash the other one saw.
    wait_until(lambda: writer.check() and writer.crashes(), timeout=10)
    assert [c.agent_key for c in writer.crashes()] == [b.key]
    assert q(writer.config.database_path, "SELECT COUNT(*) FROM agent_crashes") == [(1,)]
