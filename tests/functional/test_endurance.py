"""The daemon for months, in short: a few thousand agent runs that start, crash, get
respawned, give up, complete and go stale, through one running monitor.

Boundedness is asserted structurally, never by timing: every container the monitor
holds (walked generically through its attributes: the Fixer, the LogFinder, the
sources, the cost tracker, the pid watcher...) holds no more than the runs listed
now plus a constant, and the process has the same fds and threads after as before.
A cache keyed by agent run that is never pruned grows by thousands here.

The orchestrator is ``bench/agents/churn.py`` (the endurance bench's driver), a
separate process writing the real ``agent_state.json`` under the flock protocol;
its agents are real ``/bin/sh`` processes that really exit.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import tracemalloc
from collections import deque
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from ohm_tui import OrchestratorHealthMonitor
from ohm_tui.engine.model import CrashInfo
from tests.faults.kit import REPO, Orchestrator, base_config, count, q
from tests.helpers import wait_until

CHURN = REPO / "bench" / "agents" / "churn.py"
RUNS = 2500
SLACK = 64  # per-task and per-fingerprint state: 10 looping tasks, a few fingerprints


def containers(root: object) -> dict[str, int]:
    """``path -> len`` of every dict, list, set and deque reachable from ``root`` through
    attributes of ohm's own objects (not through config, threads, locks or the store,
    nor the last check's table of the host's processes: the host's, not the runs')."""
    out: dict[str, int] = {}
    seen: set[int] = set()

    def ours(obj: object) -> bool:
        return type(obj).__module__.startswith("ohm_tui.") and not callable(obj)

    def attrs(obj: object) -> Iterator[tuple[str, object]]:
        names: list[str] = list(getattr(obj, "__dict__", {}))
        for klass in type(obj).__mro__:
            slots = klass.__dict__.get("__slots__", ())
            names.extend([slots] if isinstance(slots, str) else slots)
        for name in names:
            if name in ("config", "cfg", "m", "_monitor", "monitor", "_store", "store"):
                continue
            if name == "_orch_scan":  # the host's process table of the last check
                continue
            try:
                yield name, getattr(obj, name)
            except AttributeError:
                continue

    def walk(obj: object, path: str, depth: int) -> None:
        if id(obj) in seen or depth > 6:
            return
        seen.add(id(obj))
        if isinstance(obj, (dict, list, set, frozenset, deque, tuple)):
            if not isinstance(obj, tuple):
                out[path] = len(obj)
            values = obj.values() if isinstance(obj, dict) else obj
            for i, v in enumerate(list(values)[:50]):  # their insides, for nested caches
                walk(v, f"{path}[{i}]", depth + 1)
        elif ours(obj):
            for name, value in attrs(obj):
                walk(value, f"{path}.{name}", depth + 1)

    walk(root, "monitor", 0)
    return out


def fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def fd_kinds() -> list[str]:
    """What each open fd is (for the message when they differ)."""
    out = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            out.append(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:
            continue
    return sorted(out)


def threads() -> int:
    return len(os.listdir("/proc/self/task"))


@pytest.mark.timeout(300)
def test_a_few_thousand_runs_leave_every_cache_bounded(data_dir: Path) -> None:
    cfg = base_config(
        data_dir,
        health_check_interval=0.5,
        heartbeat_interval=30.0,  # the orchestrator cleans up within a cycle: not a crash
        max_respawn_attempts=2,
        respawn_backoff_base=0.05,
        crash_storm_threshold=100000,  # the storm issue is not what this test is about
    )
    mon = OrchestratorHealthMonitor(cfg, name="endurance")
    database = data_dir / "orchestrator.db"
    churn: subprocess.Popen[str] | None = None
    try:
        mon.start()
        wait_until(lambda: count(database, "SELECT COUNT(*) FROM health_checks") >= 2, 30)
        fds_before, threads_before, kinds_before = fds(), threads(), fd_kinds()
        argv = [sys.executable, str(CHURN), "--data-dir", str(data_dir), "--runs", str(RUNS)]
        churn = subprocess.Popen(
            [*argv, "--rate", "100", "--linger", "1.5"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert churn.stdout is not None
        peak = 0
        done: dict[str, Any] = {}
        for line in churn.stdout:
            msg = json.loads(line)
            if msg.get("runs"):  # mid-run: the biggest cache seen while runs are listed
                peak = max(peak, max(containers(mon).values()))
            if msg.get("done"):
                done = msg
        assert churn.wait(timeout=60) == 0
        churn.stdout.close()  # our own pipe: not counted against the monitor
        assert done["runs"] == RUNS
        crashes = set(done["crashes"])

        # The monitor has caught up: every crash the driver caused is recorded,
        # every respawn of it ended, nothing is left to act on.
        def settled() -> bool:
            keys = {k for (k,) in q(database, "SELECT agent_key FROM agent_crashes")}
            busy = count(
                database,
                "SELECT COUNT(*) FROM agent_crashes WHERE fix_state IN ('pending', 'claimed')",
            )
            state.update(missing=sorted(crashes - keys)[:5], busy=busy, watching=mon.watching())
            return crashes <= keys and busy == 0 and not mon.watching()

        state: dict[str, object] = {}
        wait_until(settled, 120, 0.2, message=f"the monitor caught up with the churn: {state}")
        mon.wake()
        n_checks = count(database, "SELECT COUNT(*) FROM health_checks")
        wait_until(lambda: count(database, "SELECT COUNT(*) FROM health_checks") > n_checks, 30)

        # Every crash exactly once; respawned runs' crashes are theirs, once each.
        keys = [k for (k,) in q(database, "SELECT agent_key FROM agent_crashes")]
        assert len(keys) == len(set(keys))
        ours = {k for (k,) in q(database, "SELECT agent_key FROM ohm_agents")}
        assert set(keys) - ours == crashes
        crashed = [
            k for (k,) in q(database, "SELECT agent_key FROM ohm_events WHERE kind='crashed'")
        ]
        assert sorted(crashed) == sorted(keys)

        # Structure: nothing holds more than what is listed now plus a constant.
        # Listed: the runs observed, and the completed entries the file keeps (100 at most).
        view = mon._last_view
        listed = len(mon._observations) + (len(view.completed) if view is not None else 0)
        sizes = containers(mon)
        big = {p: n for p, n in sizes.items() if n > listed + SLACK}
        assert not big, f"{listed} runs listed now; grew with the runs seen: {big}"
        assert peak < RUNS // 4, peak  # while running too: far fewer than the runs seen

        # Same fds and threads as before the churn (pidfds closed, no thread per run).
        wait_until(
            lambda: fds() <= fds_before,
            10,
            message=f"fds back to {fds_before}: {kinds_before} -> {fd_kinds()}",
        )
        wait_until(lambda: threads() <= threads_before, 10, message="threads back")
        assert threading.active_count() <= threads_before
    finally:
        if churn is not None and churn.poll() is None:
            churn.kill()
            churn.wait()
        mon.close()


def test_a_watched_run_found_gone_by_a_check_gets_the_cleanup_grace(data_dir: Path) -> None:
    """In a busy churn a check can find a watched run gone before its death event is
    handled. It died just now: as on the event path, the orchestrator's cleanup gets
    ``heartbeat_interval`` before "gone while listed running" counts as a crash. It
    was taken as dead long ago: a completed run, reaped by its orchestrator, was a
    crash at once (and was respawned)."""
    orch = Orchestrator(data_dir)
    cfg = base_config(data_dir, heartbeat_interval=30.0, health_check_interval=3600.0)
    mon = OrchestratorHealthMonitor(cfg, name="t")
    database = data_dir / "orchestrator.db"
    try:
        agent = orch.start(argv=["/bin/sh", "-c", "read _l; exit 0"])
        mon.start()
        wait_until(lambda: agent.pid in mon.watching(), 10)
        with mon._lock:  # the death event waits for this lock: the check goes first
            assert agent.crash() == 0  # it ends well; the orchestrator reaps it at once
            report = mon.check()
        assert not [i for i in report.issues if i.type == "agent_crash"]
        wait_until(lambda: agent.pid not in mon.watching(), 10)  # the event came, too
        mon.check()
        assert count(database, "SELECT COUNT(*) FROM agent_crashes") == 0
    finally:
        mon.close()
        orch.stop_all()


def test_a_log_folder_of_every_run_ever_is_not_held_in_memory(data_dir: Path) -> None:
    """An orchestrator that never rotates its logs leaves a file per run: months of
    runs are a folder of 100,000 names. Finding the log of the runs listed now must
    keep only their names, not an index of the whole folder."""
    orch = Orchestrator(data_dir)
    logs = data_dir / "logs"
    for n in range(3000):  # the logs of runs long gone
        (logs / f"code_developer-impl-{n}-{100000 + n}.log").write_text("done\n")
    mon = OrchestratorHealthMonitor(base_config(data_dir), name="t")
    try:
        agent = orch.start(argv=["/bin/sh", "-c", "read _l; exit 0"])
        os.utime(logs, (0, 0))  # a settled folder: nothing new in the last second
        mon.check()
        assert mon._observations[agent.key].record.log_file == str(agent.log)
        os.utime(logs, (0, 0))
        mon.check()
        sizes = containers(mon)
        assert max(sizes.values()) <= len(mon._observations) + SLACK, sorted(
            sizes.items(), key=lambda kv: -kv[1]
        )[:3]
    finally:
        mon.close()
        orch.stop_all()


def test_a_log_of_an_earlier_process_with_the_same_pid_is_not_this_runs(data_dir: Path) -> None:
    """PIDs wrap (32,768 on many hosts): after some 30,000 runs the log folder holds a
    log of an earlier process with a live run's PID, perhaps with a traceback. The
    endurance run took those tracebacks for the live runs' own: 772 false crashes in
    30,000 runs. A log last written before the run started is not its log."""
    orch = Orchestrator(data_dir)
    mon = OrchestratorHealthMonitor(base_config(data_dir), name="t")
    try:
        agent = orch.start("code_developer", "impl-1", argv=["/bin/sh", "-c", "read _l; exit 0"])
        earlier = data_dir / "logs" / f"code_developer-loop-3-{agent.pid}.log"  # sorts last
        earlier.write_text("Traceback (most recent call last):\nRuntimeError: boom\n")
        os.utime(earlier, (agent.started - 3600, agent.started - 3600))
        mon.check()
        assert mon._observations[agent.key].record.log_file == str(agent.log)
    finally:
        mon.close()
        orch.stop_all()


def test_a_bug_pass_does_not_read_every_crash_of_the_day(data_dir: Path) -> None:
    """A bug pass runs after every check. It read every crash of the last 24 hours (up
    to 5,000 rows with their messages) to count them per task: a peak of megabytes a
    pass, growing with the history, which the allocator kept (the daemon's RSS grew
    run after run while its live objects stayed flat). SQLite counts them now."""
    mon = OrchestratorHealthMonitor(base_config(data_dir, crash_threshold_for_bug=3), name="t")
    try:
        store = mon.store
        info = CrashInfo(
            error_type="RuntimeError",
            error_message="upstream API returned 500 " * 40,
            root_cause="RuntimeError in step (agents/worker.py:8): " + "x" * 500,
            fingerprint="fp-loop",
        )
        now = time.time()
        with store.transaction():
            for n in range(1, 3001):
                store.record_crash(
                    agent_key=f"{n}@{int(now) - 3600}",
                    agent_pid=n,
                    agent_type="code_developer",
                    task_id=f"loop-{n % 10}",
                    crashed_at=now - n,
                    exit_code=1,
                    info=info,
                    log_file=None,
                    command_text="/bin/sh -c step",
                    cwd=None,
                    source="real",
                    fix_state="skipped",
                )
        report = mon.check()
        tracemalloc.start()
        try:
            numbers = mon.report_bugs_if_any(report)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert numbers  # the looping tasks are worth a bug: one, by their fingerprint
        database = mon.config.database_path
        assert count(database, "SELECT COUNT(*) FROM agent_crashes WHERE bug_number IS NULL") == 0
        ((occurrences,),) = q(database, "SELECT COUNT(DISTINCT bug_number) FROM agent_crashes")
        assert occurrences == 1
        # Reading the 3,000 rows alone holds about 6 MB of Python objects.
        assert peak < 2_000_000, peak
    finally:
        mon.close()


def test_a_bug_pass_asks_the_database_a_constant_number_of_questions(data_dir: Path) -> None:
    """Tasks that crashed once, below the bug threshold, stay crash groups all day: a
    respawn state read for each, every pass, made the daemon's CPU grow with its
    history (15 % of a core over 10,000 runs, 56 % over 100,000)."""
    mon = OrchestratorHealthMonitor(base_config(data_dir, crash_threshold_for_bug=3), name="t")
    try:
        store = mon.store

        def crash_once_tasks(first: int, n: int) -> None:
            now = time.time()
            with store.transaction():
                for i in range(first, first + n):
                    store.record_crash(
                        agent_key=f"{i}@{int(now) - 60}",
                        agent_pid=i,
                        agent_type="code_developer",
                        task_id=f"once-{i}",
                        crashed_at=now - 1,
                        exit_code=1,
                        info=CrashInfo(error_type="RuntimeError", fingerprint=f"fp-{i}"),
                        log_file=None,
                        command_text="/bin/sh -c step",
                        cwd=None,
                        source="real",
                        fix_state="skipped",
                    )

        def statements_of_a_pass() -> int:
            report = mon.check()
            seen: list[str] = []
            conn = store.db._connection()
            conn.set_trace_callback(seen.append)
            try:
                mon.report_bugs_if_any(report)
            finally:
                conn.set_trace_callback(None)
            return len(seen)

        crash_once_tasks(1, 20)
        few = statements_of_a_pass()
        crash_once_tasks(1000, 2000)
        many = statements_of_a_pass()
        assert many == few, (few, many)
        assert not mon.bugs("all")  # none of them is worth a bug
    finally:
        mon.close()


def test_a_snapshot_asks_the_database_the_same_for_20_agents_as_for_400(data_dir: Path) -> None:
    """The console takes a snapshot every refresh: one ledger read per agent was most
    of the idle console's CPU at 5,000 agents. Entries in the real era-1 format."""

    def write_state(n: int) -> None:
        started = datetime.fromtimestamp(time.time() - 60).isoformat()
        agents = {
            str(4_194_400 + i): {
                "pid": 4_194_400 + i,  # above pid_max: never a live process
                "agent_type": "code_developer",
                "task_id": f"impl-{i}",
                "command": f"poetry run code-developer --task=impl-{i}",
                "started_at": started,
                "status": "running",
            }
            for i in range(n)
        }
        state = data_dir / "orchestrator" / "agent_state.json"
        state.parent.mkdir(parents=True, exist_ok=True)
        state.write_text(json.dumps({"active_agents": agents, "completed_agents": []}))

    mon = OrchestratorHealthMonitor(base_config(data_dir), name="t")
    try:

        def statements_of_a_snapshot(n: int) -> int:
            write_state(n)
            mon.check()
            seen: list[str] = []
            conn = mon.store.db._connection()
            conn.set_trace_callback(seen.append)
            try:
                snap = mon.snapshot()
            finally:
                conn.set_trace_callback(None)
            assert len(snap.agents) == n
            return len(seen)

        few = statements_of_a_snapshot(20)
        many = statements_of_a_snapshot(400)
        assert many == few, (few, many)
    finally:
        mon.close()
