"""Cost and tokens of session agents, from a real ``claude_invocations.db`` (era 3).

Every test runs with ``TZ`` 14 hours from UTC: the invocations' naive UTC times
read as local (or the lifecycle's naive local times read as UTC) would put every
call 14 hours off, out of "the last hour", and attribute no call to its task.
"""

from __future__ import annotations

import json
import sqlite3
import sys
import time
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
import pytest

from ohm_tui.cli.main import main
from ohm_tui.engine.model import CostRow
from ohm_tui.engine.monitor import OrchestratorHealthMonitor
from ohm_tui.engine.sources import invocations as inv
from tests.helpers import ProcessReaper
from tests.invocations_db import InvocationsDB, add_session_run, local_naive, utc_naive

MIN = 60.0

pytestmark = pytest.mark.usefixtures("far_from_utc")  # UTC+14: times read wrongly show


def write_day(data_dir: Path, now: float) -> InvocationsDB:
    """Three session runs and seven calls; each call's task is known a different way."""
    add_session_run(data_dir, "architect", "spec-20", started=now - 40 * MIN)
    add_session_run(
        data_dir,
        "code_developer",
        "impl-7",
        started=now - 180 * MIN,
        completed=now - 120 * MIN,
        worktree="/wt/impl-7",
        status="completed",
    )
    add_session_run(data_dir, "code_developer", "impl-8", started=now - 50 * MIN)
    db = InvocationsDB(data_dir)
    # In the order the invoker inserts them: when each call starts.
    # Outside a 24 h window:
    db.call("architect", invoked=now - 30 * 3600, completed=now - 30 * 3600 + 60,
            input_tokens=99999, output_tokens=99999, cost_usd=9.00)  # fmt: skip
    # impl-7 by its worktree, although no "assistant" run exists
    db.call("assistant", invoked=now - 150 * MIN, completed=now - 149 * MIN,
            input_tokens=2000, output_tokens=400, cost_usd=1.00,
            working_dir="/wt/impl-7")  # fmt: skip
    # spec-20 by agent type and time (the architect run was going then)
    db.call("architect", invoked=now - 30 * MIN, completed=now - 29 * MIN,
            input_tokens=1000, output_tokens=200, cost_usd=0.50)  # fmt: skip
    # impl-8: "code-developer" is the lifecycle's "code_developer"
    db.call("code-developer", invoked=now - 20 * MIN, completed=now - 19 * MIN,
            input_tokens=100, output_tokens=50, cost_usd=0.10)  # fmt: skip
    db.call("architect", invoked=now - 10 * MIN, completed=now - 9 * MIN,
            input_tokens=500, output_tokens=100, cost_usd=0.25,
            status="error", error="API Error: 529 overloaded")  # fmt: skip
    # spec-99 by metadata, which wins over the running architect
    db.call("architect", invoked=now - 5 * MIN, completed=now - 4 * MIN,
            input_tokens=10, output_tokens=10, cost_usd=0.05,
            metadata={"task_id": "spec-99"})  # fmt: skip
    # still running: a call with no cost yet, and no task known
    db.call("project_manager", invoked=now - 2 * MIN, completed=None)
    return db


def by_key(rows: list[CostRow]) -> dict[Any, CostRow]:
    return {r.key: r for r in rows}


def test_aggregates_by_type_task_and_hour(data_dir: Path) -> None:
    now = time.time()
    db = write_day(data_dir, now)
    lifecycle = data_dir / "orchestrator.db"

    types = by_key(inv.read_invocations(db.path, now - 86400, until_epoch=now, by="type"))
    assert set(types) == {"architect", "assistant", "code-developer", "project_manager"}
    arch = types["architect"]
    assert (arch.calls, arch.errors, arch.input_tokens, arch.output_tokens) == (3, 1, 1510, 310)
    assert arch.cost_usd == pytest.approx(0.80)
    assert types["assistant"].cost_usd == pytest.approx(1.00)
    assert types["assistant"].duration_ms == 60_000
    pm = types["project_manager"]
    assert (pm.calls, pm.cost_usd, pm.tokens) == (1, 0.0, 0)

    tasks = by_key(
        inv.read_invocations(
            db.path, now - 86400, until_epoch=now, by="task", lifecycle_db=lifecycle
        )
    )
    assert tasks["spec-20"].cost_usd == pytest.approx(0.75)
    assert tasks["spec-20"].calls == 2
    assert tasks["impl-7"].cost_usd == pytest.approx(1.00)
    assert tasks["impl-8"].cost_usd == pytest.approx(0.10)
    assert tasks["spec-99"].cost_usd == pytest.approx(0.05)
    assert tasks[None].calls == 1  # the running project_manager call: task unknown
    assert set(tasks) == {"spec-20", "impl-7", "impl-8", "spec-99", None}

    hours = inv.read_invocations(db.path, now - 86400, until_epoch=now, by="hour")
    assert [h.key for h in hours] == sorted(h.key for h in hours)  # oldest hour first
    assert all(isinstance(h.key, float) and h.key % 3600 == 0 for h in hours)
    assert inv.total(hours).cost_usd == pytest.approx(1.90)
    bucket = float(int((now - 149 * MIN) // 3600) * 3600)
    assert by_key(hours)[bucket].cost_usd >= 1.00  # the assistant call's hour (UTC)

    last_hour = inv.read_invocations(db.path, now - 3600, until_epoch=now, by="type")
    assert inv.total(last_hour).cost_usd == pytest.approx(0.90)  # not 14 hours off
    assert inv.total(last_hour).calls == 5


def test_a_long_history_is_not_scanned_and_sums_stay_exact(data_dir: Path) -> None:
    """Ten days of calls, one every 10 minutes: the window's sums are exact, and the
    scan starts near the window (rowids grow with ``invoked_at``), not at row one."""
    now = time.time()
    db = InvocationsDB(data_dir)
    with closing(sqlite3.connect(db.path)) as conn:
        conn.executemany(
            "INSERT INTO claude_invocations (agent_type, prompt, input_tokens, output_tokens, "
            "cost_usd, duration_ms, status, invoked_at, completed_at) "
            "VALUES ('architect', 'p', 10, 5, 0.01, 60000, 'success', ?, ?)",
            [
                (utc_naive(now - k * 600), utc_naive(now - k * 600 + 60))
                for k in range(10 * 144, 0, -1)
            ],
        )
        conn.commit()
    rows = inv.read_invocations(db.path, now - 86400, until_epoch=now)
    assert inv.total(rows).calls == 144  # completed within the last 24 h
    assert inv.total(rows).cost_usd == pytest.approx(1.44)
    with closing(inv.open_invocations(db.path)) as conn:
        first = inv._first_rowid(conn, now - 86400 - inv.MAX_CALL_SECONDS)
        (invoked,) = conn.execute(
            "SELECT invoked_at FROM claude_invocations WHERE rowid = ?", (first,)
        ).fetchone()
    assert first > 10 * 144 - 144 - 40  # about 30 h of 10 days: most rows never read
    assert abs(to_epoch_utc(invoked) - (now - 30 * 3600)) <= 601  # rows are 600 s apart


def to_epoch_utc(naive: str) -> float:
    return datetime.fromisoformat(naive).replace(tzinfo=UTC).timestamp()


def test_summary_and_snapshot_figures(data_dir: Path) -> None:
    now = time.time()
    write_day(data_dir, now)
    with OrchestratorHealthMonitor(
        {"data_dir": str(data_dir), "orchestrator_match": ["no-such-orchestrator"]}
    ) as monitor:
        snap = monitor.snapshot()
        assert snap.cost is not None
        assert snap.cost.problem is None
        assert snap.cost.last_hour.cost_usd == pytest.approx(0.90)
        assert snap.cost.total.cost_usd == pytest.approx(1.90)
        assert snap.cost.total.calls == 6
        assert {r.key for r in snap.cost.by_type} >= {"architect", "assistant"}
        assert snap.cost.tasks()["spec-20"].tokens == 1800
        assert snap.report.to_dict()["metrics"]["cost_last_hour_usd"] == pytest.approx(0.90)
        assert not any(i.type == "cost_over_budget" for i in snap.report.issues)


def test_no_invocations_db_means_no_figures_and_no_issue(data_dir: Path) -> None:
    with OrchestratorHealthMonitor(
        {"data_dir": str(data_dir), "cost_budget_per_hour": 1.0}
    ) as monitor:
        snap = monitor.snapshot()
        assert snap.cost is None
        assert "cost_last_hour_usd" not in snap.report.to_dict()["metrics"]
        # No issue about the cost database itself (the "no orchestrator state found"
        # issue lists it among what was looked for).
        assert not any(
            str(i.details.get("file", "")).endswith("claude_invocations.db")
            or i.type == "cost_over_budget"
            for i in snap.report.issues
        )
    assert not (data_dir / "claude_invocations.db").exists()  # mode=ro never creates it


def test_budget_is_a_degraded_issue_then_one_bug_at_twice_it(data_dir: Path) -> None:
    now = time.time()
    db = write_day(data_dir, now)  # $0.90 in the last hour
    cfg = {
        "data_dir": str(data_dir),
        "orchestrator_match": ["no-such-orchestrator"],
        "cost_budget_per_hour": 0.50,
    }
    with OrchestratorHealthMonitor(cfg) as monitor:
        report = monitor.check()
        over = [i for i in report.issues if i.type == "cost_over_budget"]
        assert len(over) == 1
        assert over[0].severity == "degraded"
        assert report.status != "healthy"
        assert "$0.90 in the last hour" in over[0].error
        assert "$0.50/h" in over[0].error
        assert over[0].details["ratio"] == pytest.approx(1.8)
        assert monitor.report_bugs_if_any(report) == []  # 1.8x: no bug yet
        assert monitor.bugs(status="all") == []

        db.call("architect", invoked=time.time() - 60, completed=time.time() - 1,
                input_tokens=10, output_tokens=10, cost_usd=0.30)  # fmt: skip
        report = monitor.check()
        over = [i for i in report.issues if i.type == "cost_over_budget"]
        assert over and over[0].details["ratio"] == pytest.approx(2.4)
        numbers = monitor.report_bugs_if_any(report)
        assert len(numbers) == 1
        bug = monitor.bug(numbers[0])
        assert bug.priority == "Medium"
        assert bug.category == "cost"
        assert bug.issue_type == "cost_over_budget"
        assert "$1.20 in the last hour" in bug.description
        assert over[0].bug_reported and over[0].bug_number == numbers[0]

        # The same episode, checked again: the same bug, never a second one.
        for _ in range(3):
            again = monitor.check()
            monitor.report_bugs_if_any(again)
        assert [b.bug_number for b in monitor.bugs(status="all")] == numbers
    with closing(sqlite3.connect(data_dir / "orchestrator.db")) as conn:
        rows = conn.execute("SELECT priority, status FROM bugs").fetchall()
    assert rows == [("Medium", "open")]  # in the real tracker's table, where it looks


def test_corrupt_db_is_named_and_never_crashes_a_check(data_dir: Path) -> None:
    (data_dir / "claude_invocations.db").write_bytes(b"this is not sqlite at all\n" * 200)
    with OrchestratorHealthMonitor(
        {"data_dir": str(data_dir), "cost_budget_per_hour": 1.0}
    ) as monitor:
        snap = monitor.snapshot()
        assert snap.cost is not None and snap.cost.problem is not None
        assert "not a readable SQLite database" in snap.cost.problem
        named = [
            i
            for i in snap.report.issues
            if str(i.details.get("file", "")).endswith("claude_invocations.db")
        ]
        assert len(named) == 1 and named[0].severity == "degraded"
    with pytest.raises(inv.InvocationsError) as err:
        inv.read_invocations(data_dir / "claude_invocations.db", 0.0)
    assert err.value.kind == "corrupt"


def test_other_table_or_missing_table(data_dir: Path) -> None:
    path = data_dir / "claude_invocations.db"
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("CREATE TABLE something_else (x)")
        conn.commit()
    with pytest.raises(inv.InvocationsError, match="has no claude_invocations table"):
        inv.read_invocations(path, 0.0)


def test_locked_db_keeps_last_figures_and_says_so_once_it_lasts(data_dir: Path) -> None:
    now = time.time()
    db = write_day(data_dir, now)
    tracker = inv.CostTracker(db.path, lifecycle_db=data_dir / "orchestrator.db")
    first = tracker.summary(now)
    assert first is not None and first.problem is None
    with closing(sqlite3.connect(db.path, isolation_level=None)) as writer:
        writer.execute("BEGIN EXCLUSIVE")  # the invoker mid-write, holding the lock
        writer.execute("UPDATE claude_invocations SET cost_usd = 100 WHERE invocation_id = 1")
        locked = tracker.summary(now + 31)  # the window moved: read again
        assert locked is not None
        assert locked.problem is not None and "locked" in locked.problem
        assert locked.last_hour.cost_usd == pytest.approx(0.90)  # last good figures kept
        assert tracker.issues(now + 31) == []  # a short lock is not news
        tracker.summary(now + 31 + inv.LOCKED_GRACE)
        named = tracker.issues(now + 31 + inv.LOCKED_GRACE)
        assert [i.type for i in named] == ["state_file_error"]
        assert "locked" in named[0].error and str(db.path) in named[0].error
        writer.execute("ROLLBACK")
    again = tracker.summary(now + 31 + inv.LOCKED_GRACE + 1)
    assert again is not None and again.problem is None
    assert tracker.issues(now) == []


# --------------------------------------------------------------------------- ohm cost
def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_cli_cost_json_by_type_task_and_hour(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    now = time.time()
    write_day(data_dir, now)
    rc, out, err = run(capsys, "cost", "--data-dir", str(data_dir), "--json")
    assert rc == 0, err
    doc = json.loads(out)
    assert doc["by"] == "type" and doc["last"] == "24h"
    assert doc["total"]["cost_usd"] == pytest.approx(1.90)
    assert doc["total"]["calls"] == 6
    assert doc["last_hour"]["cost_usd"] == pytest.approx(0.90)
    rows = {r["key"]: r for r in doc["rows"]}
    assert rows["architect"]["tokens"] == 1820 and rows["architect"]["errors"] == 1

    rc, out, _ = run(capsys, "cost", "--data-dir", str(data_dir), "--by", "task", "--json")
    assert rc == 0
    tasks = {r["key"]: r["cost_usd"] for r in json.loads(out)["rows"]}
    assert tasks["spec-20"] == pytest.approx(0.75)
    assert tasks["impl-7"] == pytest.approx(1.00)

    rc, out, _ = run(
        capsys, "cost", "--data-dir", str(data_dir), "--by", "hour", "--last", "1h", "--json"
    )
    assert rc == 0
    doc = json.loads(out)
    assert sum(r["cost_usd"] for r in doc["rows"]) == pytest.approx(0.90)
    assert all(r["key"] % 3600 == 0 for r in doc["rows"])


def test_cli_cost_table(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    now = time.time()
    write_day(data_dir, now)
    rc, out, err = run(capsys, "cost", "--data-dir", str(data_dir), "--by", "task")
    assert rc == 0, err
    lines = out.splitlines()
    assert lines[0].split()[:2] == ["TASK", "CALLS"]
    impl7 = next(line for line in lines if line.startswith("impl-7"))
    assert "$1.00" in impl7 and "2,400" in impl7
    assert any(line.startswith("(unknown)") for line in lines)
    assert "total" in lines[-2] and "$1.90" in lines[-2]
    assert "last hour: $0.90" in lines[-1]

    rc, out, _ = run(capsys, "cost", "--data-dir", str(data_dir), "--last", "1m")
    assert rc == 0
    assert "No Claude calls in the last 1m" in out


def test_cli_cost_without_db_and_with_a_bad_one(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc, out, err = run(capsys, "cost", "--data-dir", str(data_dir))
    assert rc == 0 and err == ""
    assert "no claude_invocations.db" in out
    rc, out, err = run(capsys, "cost", "--data-dir", str(data_dir), "--json")
    assert rc == 0 and json.loads(out)["rows"] == [] and json.loads(out)["problem"]

    (data_dir / "claude_invocations.db").write_bytes(b"garbage" * 1000)
    rc, out, err = run(capsys, "cost", "--data-dir", str(data_dir))
    assert rc == 1
    assert err.startswith("ohm: error: ") and "claude_invocations.db" in err
    assert "Traceback" not in err

    rc, _, err = run(capsys, "cost", "--data-dir", str(data_dir), "--by", "day")
    assert rc == 2 and "invalid choice" in err


def write_agent_state(data_dir: Path, pid: int, agent_type: str, task: str, started: float) -> None:
    """A real-format ``agent_state.json`` naming one live agent."""
    path = data_dir / "orchestrator" / "agent_state.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    entry = {
        "pid": pid,
        "agent_type": agent_type,
        "task_id": task,
        "task_type": "create_spec",
        "priority_number": 20,
        "command": f"{sys.executable} -c agent",
        "started_at": local_naive(started),
        "status": "running",
    }
    path.write_text(json.dumps({"active_agents": {str(pid): entry}, "completed_agents": []}))


def test_cli_agents_shows_cost_and_tokens_of_the_task(
    data_dir: Path, capsys: pytest.CaptureFixture[str], reaper: ProcessReaper
) -> None:
    now = time.time()
    write_day(data_dir, now)
    rc, out, _ = run(capsys, "agents", "--data-dir", str(data_dir))
    # The session runs of agent_lifecycle are agents (era 3), each with its task's spend.
    assert rc == 0 and "COST" in out and "$0.75" in out and "spec-20" in out

    agent = reaper.spawn_py("import time; time.sleep(60)")
    started = psutil.Process(agent.pid).create_time()
    write_agent_state(data_dir, agent.pid, "architect", "spec-20", started)
    rc, out, err = run(capsys, "agents", "--data-dir", str(data_dir))
    assert rc == 0, err
    head, *rows = out.splitlines()
    assert head.split()[8:10] == ["COST", "TOKENS"]
    (row,) = [r for r in rows if r.startswith(str(agent.pid))]
    assert "$0.75" in row and "1,800" in row

    rc, out, _ = run(capsys, "agents", "--data-dir", str(data_dir), "--json")
    (doc,) = [d for d in json.loads(out) if d["pid"] == agent.pid]
    assert doc["cost_usd"] == pytest.approx(0.75)
    assert (doc["input_tokens"], doc["output_tokens"]) == (1500, 300)


def test_cli_agents_without_invocations_has_no_cost_columns(
    data_dir: Path, capsys: pytest.CaptureFixture[str], reaper: ProcessReaper
) -> None:
    agent = reaper.spawn_py("import time; time.sleep(60)")
    started = psutil.Process(agent.pid).create_time()
    write_agent_state(data_dir, agent.pid, "architect", "spec-20", started)
    rc, out, _ = run(capsys, "agents", "--data-dir", str(data_dir))
    assert rc == 0
    assert "COST" not in out.splitlines()[0] and str(agent.pid) in out
