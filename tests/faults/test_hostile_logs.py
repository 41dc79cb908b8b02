"""Agent logs that are hostile or broken: parsing gives the best answer it can, never
raises, and reads only a bounded tail (a 1 GB log costs no more than a small one)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import textwrap
from pathlib import Path
from typing import Any

from ohm_tui import OrchestratorHealthMonitor
from ohm_tui.engine.model import HealthReport
from ohm_tui.engine.sources import logparse
from tests.faults.kit import (
    PY,
    MonitorFactory,
    Orchestrator,
    crash_argv,
    python_env,
)
from tests.helpers import wait_until

TRACEBACK = (
    b"Traceback (most recent call last):\n"
    b'  File "/srv/proj/agents/worker.py", line 12, in <module>\n'
    b"    run()\n"
    b'  File "/srv/proj/agents/worker.py", line 8, in run\n'
    b"    step()\n"
    b"RuntimeError: upstream API returned 500\n"
)


def crash_rows(mon: OrchestratorHealthMonitor) -> list[dict[str, Any]]:
    return [c.to_dict() for c in mon.crashes()]


def cycle_until_crash(mon: OrchestratorHealthMonitor, timeout: float = 5.0) -> dict[str, Any]:
    """Checks until the crash is recorded (a death is news one heartbeat later at most)."""
    wait_until(lambda: mon.check() and mon.crashes(), timeout=timeout, message="crash recorded")
    (row,) = crash_rows(mon)
    return row


def error_issues(report: HealthReport) -> list[str]:
    return [i.error for i in report.issues if i.type == "agent_errors"]


def test_non_utf8_bytes_in_log(orch: Orchestrator, ohm: MonitorFactory) -> None:
    # printf turns \351 \377 \376 into raw bytes: Latin-1 and junk, not UTF-8.
    script = (
        "read _; printf 'Traceback (most recent call last):\\n"
        '  File "/srv/proj/agents/worker.py", line 12, in <module>\\n'
        "    run()\\nRuntimeError: caf\\351 \\377\\376 failed\\n'; exit 1"
    )
    agent = orch.start(argv=["/bin/sh", "-c", script])
    with open(agent.log, "ab") as fh:
        fh.write(
            b"\xff\xfe\x00 binary junk \x80\x81\x82\n2025-10-19 19:43:20,5 - a - INFO - \xc3(\n"
        )
    mon = ohm()
    mon.check()
    with open(agent.log, "ab") as fh:
        fh.write(b"2025-10-19 19:43:21,0 - agent - ERROR - bad \xe9\xff bytes\n")
    assert any("bad" in e for e in error_issues(mon.check()))
    agent.crash()
    row = cycle_until_crash(mon)
    assert row["error_type"] == "RuntimeError"
    assert row["error_message"].startswith("caf") and row["error_message"].endswith("failed")
    assert "\ufffd" in row["error_message"]  # undecodable bytes shown as such, not dropped
    assert "worker.py" in row["stack_trace"]
    assert row["related_files"] == ["/srv/proj/agents/worker.py"]


# A monitor in its own process, so that its peak memory is its own.
ONE_GB = textwrap.dedent(
    """\
    import json, os, resource, subprocess, sys, time, tracemalloc
    from ohm_tui import OrchestratorHealthMonitor
    from ohm_tui.engine.sources import logtail
    data, argv = sys.argv[1], json.loads(sys.argv[2])
    logs = os.path.join(data, "logs"); os.makedirs(logs)
    state = os.path.join(data, "orchestrator"); os.makedirs(state)
    log = os.path.join(logs, "agent.log")
    fh = open(log, "ab")
    agent = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=fh, stderr=fh)
    started = time.time()
    with open(log, "r+b") as f:  # 1 GiB, sparse, then real lines at the end
        f.truncate(1 << 30)
        f.seek(0, 2)
        f.write(b"2025-10-19 19:43:20,1 - agent - INFO - working on it\\n" * 20000)
    with open(os.path.join(state, "agent_state.json"), "w") as f:
        json.dump({"format": "ohm", "active_agents": {str(agent.pid): {
            "pid": agent.pid, "agent_type": "architect", "task_id": "big-log",
            "command": argv, "started_at": started, "log_file": log,
            "status": "running"}}}, f)
    cfg = {"data_dir": data, "heartbeat_interval": 0.2, "health_check_interval": 0.1,
           "orchestrator_match": ["no-such-orchestrator"]}
    mon = OrchestratorHealthMonitor(cfg)
    mon.check()  # warm up: imports, database, first sight of the log
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tracemalloc.start()
    t0 = time.perf_counter()
    with open(log, "ab") as f:
        f.write(b"2025-10-19 19:43:21,0 - agent - ERROR - disk quota low\\n")
    errors = [i.error for i in mon.check().issues if i.type == "agent_errors"]
    tail = logtail.tail_text(log, 65536)
    offset, new = logtail.read_new(log, 0, 65536)  # from the start: bounded anyway
    last = logtail.last_line(tail)
    agent.stdin.close(); agent.wait()
    deadline = time.monotonic() + 5
    while not mon.crashes() and time.monotonic() < deadline:
        mon.check()
    snap = mon.snapshot()
    elapsed = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1]
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    crash = mon.crashes()[0].to_dict() if mon.crashes() else None
    mon.close()
    print(json.dumps({"size": os.path.getsize(log), "peak": peak, "rss_growth_kb": rss - base_rss,
                      "elapsed": elapsed, "errors": errors, "new_len": len(new), "last": last,
                      "offset": offset, "crash": crash, "agents": len(snap.agents)}))
    """
)


def test_one_gigabyte_log_reads_only_the_tail_with_bounded_memory(tmp_path: Path) -> None:
    data = tmp_path / "big"
    out = subprocess.run(
        [PY, "-c", ONE_GB, str(data), json.dumps(crash_argv())],
        capture_output=True,
        text=True,
        env=python_env(),
        timeout=60,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    r = json.loads(out.stdout.strip().splitlines()[-1])
    assert r["size"] > 1 << 30  # really a 1 GB file to whoever reads it
    assert r["peak"] < 8 * 1024 * 1024, r  # Python allocations while reading it
    assert r["rss_growth_kb"] < 64 * 1024, r  # the process never pulled the file in
    assert r["elapsed"] < 5.0, r
    assert any("disk quota low" in e for e in r["errors"]), r["errors"]
    assert r["new_len"] <= 65536 and r["offset"] > 1 << 30  # the tail only, from the end
    assert r["crash"] is not None, r
    assert r["crash"]["error_type"] == "RuntimeError"
    assert r["crash"]["error_message"] == "upstream API returned 500"
    assert len(r["crash"]["log_excerpt"] or "") < 64 * 1024


def test_single_five_megabyte_line(orch: Orchestrator, ohm: MonitorFactory) -> None:
    agent = orch.start()
    mon = ohm()
    mon.check()
    huge = b"2025-10-19 19:43:21,0 - agent - ERROR - " + b"x" * (5 * 1024 * 1024)
    with open(agent.log, "ab") as fh:
        fh.write(huge + b"\n")
    errors = error_issues(mon.check())
    assert errors and all(len(e) < 1000 for e in errors)  # named, clipped: not 5 MB
    # The same line still being written (no newline yet): shown clipped, never whole.
    with open(agent.log, "ab") as fh:
        fh.write(b"y" * (5 * 1024 * 1024))
    mon.check()
    (view,) = [v for v in mon.snapshot().agents if v.pid == agent.pid]
    assert view.last_log_line is not None and len(view.last_log_line) <= 200
    with open(agent.log, "ab") as fh:
        fh.write(b"\n")
    agent.crash()
    row = cycle_until_crash(mon)
    assert row["error_type"] == "RuntimeError"
    assert row["error_message"] == "upstream API returned 500"
    assert len(row["log_excerpt"] or "") < 64 * 1024
    # Straight through the parser: a 5 MB line right before the traceback.
    info = logparse.parse_crash((huge + b"\n" + TRACEBACK).decode())
    assert info.error_type == "RuntimeError" and info.related_files == [
        "/srv/proj/agents/worker.py"
    ]
    assert len(logparse.error_lines(huge.decode())[0]) < 5000


def _append(path: Path, text: str) -> None:
    with open(path, "a") as fh:
        fh.write(text)


def test_log_truncated_and_rotated_under_ohm(orch: Orchestrator, ohm: MonitorFactory) -> None:
    agent = orch.start()
    mon = ohm()
    _append(agent.log, "2025-10-19 19:43:20,1 - agent - INFO - working\n" * 200)
    mon.check()  # first sight: ohm remembers where the log ended
    _append(agent.log, "2025-10-19 19:43:21,0 - agent - ERROR - before rotation\n")
    assert any("before rotation" in e for e in error_issues(mon.check()))

    # copytruncate: same file, cut to zero, then new lines.
    os.truncate(agent.log, 0)
    _append(agent.log, "2025-10-19 19:43:22,0 - agent - ERROR - after truncation\n")
    assert any("after truncation" in e for e in error_issues(mon.check()))

    # rename + new file that is already LONGER than where ohm stopped reading.
    agent.log.rename(agent.log.with_suffix(".log.1"))
    _append(agent.log, "2025-10-19 19:43:23,0 - agent - ERROR - right after rotation\n")
    _append(agent.log, "2025-10-19 19:43:23,1 - agent - INFO - busy\n" * 400)
    assert any("right after rotation" in e for e in error_issues(mon.check()))
    assert not error_issues(mon.check())  # and it is not reported twice

    agent.crash()  # its fd still points at the rotated file: no traceback in the new one
    row = cycle_until_crash(mon)
    assert row["agent_key"] == agent.key
    assert len(mon.crashes()) == 1


def test_log_deleted_while_tailed(orch: Orchestrator, ohm: MonitorFactory) -> None:
    agent = orch.start()
    mon = ohm()
    _append(agent.log, "2025-10-19 19:43:20,1 - agent - INFO - working\n")
    mon.check()
    agent.log.unlink()
    report = mon.check()  # no raise, no error issue invented
    assert not error_issues(report)
    (view,) = [v for v in mon.snapshot().agents if v.pid == agent.pid]
    assert view.status == "running" and view.last_log_line is None
    agent.crash()  # writes its traceback into the deleted file
    row = cycle_until_crash(mon)
    assert row["agent_key"] == agent.key
    assert row["error_type"] == "ProcessGone"  # the best answer without a log
    assert mon.check().status in ("degraded", "healthy")
    assert len(mon.crashes()) == 1


CUT_AGENT = textwrap.dedent(
    """\
    import os, signal, sys
    sys.stdin.read()
    sys.stderr.write(
        "Traceback (most recent call last):\\n"
        '  File "/srv/proj/coffee_maker/autonomous/daemon.py", line 88, in run_loop\\n'
        "    self.tick()\\n"
        '  File "/srv/proj/coffee_maker/autonomous/daemon.py", line 12'
    )
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)  # killed mid-write: the traceback stops here
    """
)


def test_traceback_cut_in_half(orch: Orchestrator, ohm: MonitorFactory) -> None:
    agent = orch.start(argv=[PY, "-c", CUT_AGENT])
    mon = ohm()
    mon.check()
    assert agent.crash() == -signal.SIGKILL
    row = cycle_until_crash(mon)
    # The last frame is itself cut (no function name): file and line are still named.
    assert row["root_cause"].startswith("Traceback cut short; last frame")
    assert "daemon.py:12" in row["root_cause"]
    assert row["related_files"] == ["/srv/proj/coffee_maker/autonomous/daemon.py"]
    assert row["stack_trace"].startswith("Traceback (most recent call last):")
    # The other half: the header scrolled out of the tail, the bottom is still there.
    bottom = b"x" * 70000 + b"\n" + TRACEBACK[len(b"Traceback (most recent call last):\n") :]
    info = logparse.parse_crash(bottom[-65536:].decode())
    assert info.error_type == "RuntimeError"
    assert info.related_files == ["/srv/proj/agents/worker.py"]


CHAINED_AGENT = textwrap.dedent(
    """\
    import sys
    sys.stdin.read()
    def load(cfg):
        return cfg["priority_number"]
    def main():
        try:
            load({})
        except KeyError as exc:
            raise RuntimeError("spec loader failed for spec-20") from exc
    main()
    """
)

CHAINED_HANDLING = textwrap.dedent(
    """\
    import sys
    sys.stdin.read()
    def load(cfg):
        return cfg["priority_number"]
    def main():
        try:
            load({})
        except KeyError:
            raise RuntimeError("spec loader failed for spec-20")
    main()
    """
)


def test_chained_exception_during_handling(
    orch: Orchestrator, ohm: MonitorFactory, tmp_path: Path
) -> None:
    script = tmp_path / "agent_chained.py"
    script.write_text(CHAINED_HANDLING)
    agent = orch.start(argv=[PY, str(script)])
    mon = ohm()
    mon.check()
    assert agent.crash() == 1
    row = cycle_until_crash(mon)
    assert row["error_type"] == "RuntimeError"
    assert row["error_message"] == "spec loader failed for spec-20"
    trace = row["stack_trace"]
    assert "During handling of the above exception, another exception occurred:" in trace
    assert "KeyError: 'priority_number'" in trace  # the first exception is kept
    assert trace.index("KeyError") < trace.index("RuntimeError: spec loader")
    assert row["related_files"] == [str(script)]


def test_explicit_cause_chain(tmp_path: Path) -> None:
    """``raise ... from exc``: the last exception is the error, both are in the trace."""
    script = tmp_path / "cause.py"
    script.write_text(CHAINED_AGENT.replace("sys.stdin.read()\n", ""))
    out = subprocess.run([PY, str(script)], capture_output=True, text=True, timeout=30)
    assert out.returncode == 1
    info = logparse.parse_crash(out.stderr)
    assert info.error_type == "RuntimeError"
    assert "direct cause of the following exception" in (info.stack_trace or "")
    assert "KeyError" in (info.stack_trace or "")
    assert info.fingerprint
