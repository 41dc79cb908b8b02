"""Alerts: log line, optional bell, optional command (real scripts), rate limiting."""

from __future__ import annotations

import io
import json
import logging
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import pytest

from ohm_tui.engine.config import Config, load_config
from ohm_tui.engine.notify import Notifier, run_command


def wait_until(pred: Callable[[], bool], timeout: float = 10.0, interval: float = 0.01) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(interval)


def config(**kw: Any) -> Config:
    return load_config(kw, search_cwd=False)


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def alerts(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "ohm.alert"]


def test_bell_only_when_sound_is_on(caplog: pytest.LogCaptureFixture) -> None:
    quiet, loud = io.StringIO(), io.StringIO()
    with caplog.at_level(logging.WARNING, logger="ohm.alert"):
        Notifier(config(), stream=quiet).alert("warning", "agent crashed")
        Notifier(config(sound=True), stream=loud).alert("critical", "loop frozen")
    assert quiet.getvalue() == ""
    assert loud.getvalue() == "\a"
    records = alerts(caplog)
    assert [(r.levelno, r.getMessage()) for r in records] == [
        (logging.WARNING, "agent crashed"),
        (logging.CRITICAL, "loop frozen"),
    ]


def test_identical_alerts_are_rate_limited(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    stream = io.StringIO()
    notifier = Notifier(config(sound=True), stream=stream, clock=clock)
    with caplog.at_level(logging.WARNING, logger="ohm.alert"):
        notifier.alert("warning", "agent crashed")
        notifier.alert("warning", "agent crashed")
        notifier.alert("critical", "agent crashed")  # another level is another alert
        notifier.alert("warning", "another thing")
        clock.t += 59
        notifier.alert("warning", "agent crashed")
        clock.t += 2
        notifier.alert("warning", "agent crashed")
    messages = [(r.levelname, r.getMessage()) for r in alerts(caplog)]
    assert messages == [
        ("WARNING", "agent crashed"),
        ("CRITICAL", "agent crashed"),
        ("WARNING", "another thing"),
        ("WARNING", "agent crashed"),
    ]
    assert stream.getvalue() == "\a" * 4


def test_notify_command_receives_json(tmp_path: Path) -> None:
    out = tmp_path / "alert.json"
    script = tmp_path / "notify.py"
    script.write_text(
        textwrap.dedent(
            """
            import sys, os
            data = sys.stdin.read()
            tmp = sys.argv[1] + ".tmp"
            open(tmp, "w").write(data)
            os.replace(tmp, sys.argv[1])
            """
        )
    )
    notifier = Notifier(config(notify_command=[sys.executable, str(script), str(out)]))
    started = time.monotonic()
    notifier.alert("critical", "orchestrator loop frozen", data={"age": 412})
    assert time.monotonic() - started < 1.0  # runs in the background
    wait_until(out.exists)
    payload = json.loads(out.read_text())
    assert payload["level"] == "critical"
    assert payload["message"] == "orchestrator loop frozen"
    assert payload["data"] == {"age": 412}
    assert abs(payload["ts"] - time.time()) < 60
    assert notifier.flush(timeout=10)


def test_failing_command_is_logged_not_raised(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    failing = tmp_path / "fail.py"
    failing.write_text("import sys\nprint('pager down')\nsys.exit(3)\n")
    with caplog.at_level(logging.WARNING, logger="ohm.alert"):
        for argv in ([sys.executable, str(failing)], [str(tmp_path / "missing-notifier")]):
            notifier = Notifier(config(notify_command=argv))
            notifier.alert("warning", f"crash via {argv[-1]}")
            assert notifier.flush(timeout=10)
    logged = [r.getMessage() for r in alerts(caplog)]
    assert any("exited with status 3" in m and "pager down" in m for m in logged), logged
    assert any("cannot run" in m and "missing-notifier" in m for m in logged), logged


def test_run_command_times_out_and_kills_the_hook(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    script = tmp_path / "slow.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import os, subprocess, sys, time
            child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
            open({str(pidfile)!r}, "w").write(f"{{os.getpid()}} {{child.pid}}")
            time.sleep(60)
            """
        )
    )
    started = time.monotonic()
    result = run_command([sys.executable, str(script)], {"x": 1}, timeout=2.0)
    assert time.monotonic() - started < 6
    assert not result.ok and result.timed_out and "timed out" in (result.error or "")
    pids = [int(p) for p in pidfile.read_text().split()]

    def gone(pid: int) -> bool:
        try:
            return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return True

    wait_until(lambda: all(gone(p) for p in pids))  # the hook's own child is killed too


def test_run_command_bounds_output(tmp_path: Path) -> None:
    script = tmp_path / "loud.py"
    script.write_text("import sys\nsys.stdout.write('x' * 100000 + 'END')\n")
    result = run_command([sys.executable, str(script)], None, timeout=10, max_output=100)
    assert result.ok and result.returncode == 0
    assert len(result.output) == 100 and result.output.endswith("END")
