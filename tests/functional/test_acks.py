"""Acknowledging an issue: the status stops shouting about it until it changes.

Real agents that really crash (through ohm's runner), a real database.
"""

from __future__ import annotations

import sqlite3
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ohm_tui import OrchestratorHealthMonitor
from ohm_tui.engine.detect import acks, headline
from ohm_tui.engine.model import Ack, EventKind, Issue, IssueType
from ohm_tui.engine.monitor import UnknownIssueError
from tests.helpers import wait_until

CRASHER = "import sys; print('boom', flush=True); sys.exit(3)"


@pytest.fixture
def mon(tmp_path: Path) -> Iterator[OrchestratorHealthMonitor]:
    state = tmp_path / "data" / "orchestrator" / "agent_state.json"
    state.parent.mkdir(parents=True)
    state.write_text('{"active_agents": {}, "completed_agents": []}')
    m = OrchestratorHealthMonitor(
        {
            "data_dir": str(tmp_path / "data"),
            "crash_storm_threshold": 2,
            "orchestrator_match": ["no-such-orchestrator-for-this-test"],
            "tickets_dir": "",
        }
    )
    yield m
    m.close()


def crash(mon: OrchestratorHealthMonitor, task: str, tmp_path: Path) -> None:
    """Start a real agent that exits 3, and wait until a check has recorded its crash."""
    before = len(mon.crashes())
    mon.spawn_agent(
        [sys.executable, "-c", CRASHER], agent_type="architect", task_id=task, cwd=tmp_path
    )
    wait_until(
        lambda: mon.check() is not None and len(mon.crashes()) > before,
        timeout=20,
        message=f"crash on {task} recorded",
    )


def storm(report: Any) -> Issue:
    (issue,) = [i for i in report.issues if i.type == IssueType.CRASH_STORM]
    return issue


def test_ack_silences_the_rollup_and_a_new_crash_raises_it_again(
    mon: OrchestratorHealthMonitor, tmp_path: Path
) -> None:
    for n in range(3):
        crash(mon, f"t{n}", tmp_path)
    report = mon.check()
    assert report.status == "critical"
    assert headline.headline(report).startswith("crash storm: 3/h")

    ack = mon.acknowledge("crash_storm", by="alice")
    assert ack.issue_id == "crash_storm" and ack.by == "alice" and ack.until is None
    assert ack.count_at_ack == 3

    report = mon.check()
    assert report.status == "degraded"  # the crashes themselves are still degraded
    acked = storm(report)  # shown, never hidden
    assert acked.ack is not None and acked.ack.by == "alice"
    (doc,) = [i for i in report.to_dict()["issues"] if i["type"] == "crash_storm"]
    assert doc["ack"]["by"] == "alice" and doc["issue_id"] == "crash_storm"
    assert not headline.headline(report).startswith("crash storm")
    assert headline.acked_count(report) == 1

    crash(mon, "t3", tmp_path)  # a new crash: news again
    report = mon.check()
    assert report.status == "critical"
    assert storm(report).ack is None
    (ended,) = mon.list_acks(include_ended=True)
    assert ended.end_reason is not None and ended.end_reason.startswith("changed: ")
    assert any(e.kind == EventKind.ACK_LIFTED for e in mon.events())


def test_ack_expires_at_the_chosen_time(mon: OrchestratorHealthMonitor, tmp_path: Path) -> None:
    for n in range(3):
        crash(mon, f"t{n}", tmp_path)
    mon.acknowledge("crash_storm", by="bob", for_seconds=0.5)
    assert mon.check().status == "degraded"
    wait_until(lambda: mon.check().status == "critical", timeout=10, message="ack expired")
    (ended,) = mon.list_acks(include_ended=True)
    assert ended.end_reason == "expired"
    assert mon.list_acks() == []


def test_ack_of_one_task_crash_and_take_it_back(
    mon: OrchestratorHealthMonitor, tmp_path: Path
) -> None:
    crash(mon, "spec-20", tmp_path)
    report = mon.check()
    assert report.status == "degraded"
    (issue,) = [i for i in report.issues if i.type == IssueType.AGENT_CRASH]
    assert issue.issue_id == "agent_crash:task:spec-20"

    mon.acknowledge("spec-20", by="carol")  # a task id names its issue
    assert mon.check().status == "healthy"

    (ended,) = mon.unacknowledge("agent_crash:task:spec-20", by="carol")
    assert ended.issue_id == "agent_crash:task:spec-20"
    assert mon.check().status == "degraded"
    with pytest.raises(UnknownIssueError):
        mon.unacknowledge("agent_crash:task:spec-20")
    with pytest.raises(UnknownIssueError):
        mon.acknowledge("no-such-issue")


def test_acks_are_rows_of_ohms_own_table(mon: OrchestratorHealthMonitor, tmp_path: Path) -> None:
    crash(mon, "spec-7", tmp_path)
    mon.acknowledge("spec-7", by="dave", for_seconds=3600)
    with sqlite3.connect(mon.config.database_path) as conn:
        rows = conn.execute(
            "SELECT issue_id, acked_by, until_ts - acked_ts, severity, crash_id FROM ohm_acks"
        ).fetchall()
    ((issue_id, by, span, severity, crash_id),) = rows
    assert (issue_id, by, severity) == ("agent_crash:task:spec-7", "dave", "degraded")
    assert span == pytest.approx(3600, abs=1)
    assert crash_id == mon.crashes()[0].crash_id


def _ack(issue: Issue, **kw: Any) -> Ack:
    m = acks.Measure.of([issue])
    fields: dict[str, Any] = {
        "ack_id": 1,
        "issue_id": acks.issue_id(issue),
        "issue_type": str(issue.type),
        "by": "x",
        "acked_at": 0.0,
        "until": None,
        "severity_at_ack": m.severity,
        "count_at_ack": m.count,
        "crash_id_at_ack": m.crash_id,
        "error_at_ack": issue.error,
    }
    fields.update(kw)
    return Ack(**fields)


def test_decide_lifts_on_worse_severity_and_on_resolution() -> None:
    """Identity is generic (type + subject); any new issue type is ackable."""
    stale = Issue(type="heartbeat_stale", severity="degraded", error="x", details={})
    new_type = Issue(type="respawn_failed", severity="degraded", error="x", task_id="spec-1")
    assert acks.issue_id(new_type) == "respawn_failed:task:spec-1"
    assert headline.words(new_type) == "spec-1 respawn failed"
    shaped_like_h_respawn = Issue(
        type="respawn_failed",
        severity="degraded",
        error="cannot start: no such file",
        task_id="spec-1",
        agent_key="5@5",
        crash_id=9,
        details={"task_key": "task:spec-1", "reason": "executable not found", "since": 1.0},
    )
    assert acks.issue_id(shaped_like_h_respawn) == "respawn_failed:task:spec-1"
    ack = _ack(stale)
    worse = Issue(type="heartbeat_stale", severity="critical", error="x")
    (d,) = acks.decide([worse], [(ack, None)], now=10.0)
    assert not d.holds and d.end_reason == "changed: now critical" and worse.ack is None
    same = Issue(type="heartbeat_stale", severity="degraded", error="y")
    (d,) = acks.decide([same], [(ack, None)], now=10.0)
    assert d.holds and same.ack is ack
    (d,) = acks.decide([], [(ack, None)], now=10.0)
    assert d.end_reason is None and d.missing_since == 10.0  # gone a moment: kept
    (d,) = acks.decide([], [(ack, 10.0)], now=10.0 + acks.RESOLVED_AFTER)
    assert d.end_reason == "resolved"


def test_an_acked_issue_raises_no_alert_until_it_changes(tmp_path: Path) -> None:
    """notify_command hears of the crash storm once; not while it is acknowledged;
    again when a new crash lifts the ack."""
    alerts = tmp_path / "alerts.jsonl"
    hook = f"import sys; open({str(alerts)!r}, 'a').write(sys.stdin.read().strip() + '\\n')"
    state = tmp_path / "data" / "orchestrator" / "agent_state.json"
    state.parent.mkdir(parents=True)
    state.write_text('{"active_agents": {}, "completed_agents": []}')
    m = OrchestratorHealthMonitor(
        {
            "data_dir": str(tmp_path / "data"),
            "crash_storm_threshold": 2,
            "orchestrator_match": ["no-such-orchestrator-for-this-test"],
            "tickets_dir": "",
            "notify_command": [sys.executable, "-c", hook],
        }
    )

    def critical_alerts() -> list[str]:
        m.notifier.flush()
        if not alerts.exists():
            return []
        lines = alerts.read_text().splitlines()
        return [line for line in lines if '"level": "critical"' in line]

    try:
        for n in range(3):
            crash(m, f"t{n}", tmp_path)
        assert m.check().status == "critical"
        assert len(critical_alerts()) == 1
        m.acknowledge("crash_storm", by="erin")
        for _ in range(3):
            assert m.check().status == "degraded"
        assert len(critical_alerts()) == 1  # silenced while acknowledged
        crash(m, "t3", tmp_path)
        assert m.check().status == "critical"
        assert len(critical_alerts()) == 2
    finally:
        m.close()


def test_an_agent_row_finds_its_issue() -> None:
    """What ``a`` on an agent or crash row acknowledges: that agent's worst issue."""
    crash_issue = Issue(
        type="agent_crash", severity="degraded", error="x", agent_key="1@1", task_id="spec-20"
    )
    given_up = Issue(
        type="agent_crash",
        severity="degraded",
        error="y",
        task_id="spec-20",
        details={"task_key": "task:spec-20", "given_up": True},
    )
    stale = Issue(
        type="zombie",
        severity="degraded",
        error="z",
        details={"kind": "stale_entries", "entries": [{"key": "7@7", "pid": 7}]},
    )
    issues = [crash_issue, given_up, stale]
    assert acks.issue_for_agent(issues, "1@1", "architect", "spec-20") is crash_issue
    assert acks.issue_for_agent(issues, "2@2", "architect", "spec-20") in (crash_issue, given_up)
    assert acks.issue_for_agent(issues, "7@7", "architect", "spec-9") is stale
    assert acks.issue_for_agent(issues, "8@8", "architect", "spec-9") is None
