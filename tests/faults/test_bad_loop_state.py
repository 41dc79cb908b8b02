"""``work_loop_state.json`` with bad values: ages are never negative or absurd, and no
false freeze is reported. Naive local times are read right in zones far from UTC."""

from __future__ import annotations

import json
import math
import os
import subprocess
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ohm_tui.engine.model import HealthReport
from tests.faults.kit import PY, MonitorFactory, Orchestrator, count, python_env, q

FREEZE = 300.0


@pytest.fixture
def tz(request: pytest.FixtureRequest) -> Iterator[str]:
    """Run the test (and the orchestrator it starts) in a zone far from UTC."""
    zone = str(getattr(request, "param", "Pacific/Kiritimati"))
    old = os.environ.get("TZ")
    os.environ["TZ"] = zone
    time.tzset()
    try:
        yield zone
    finally:
        if old is None:
            os.environ.pop("TZ", None)
        else:
            os.environ["TZ"] = old
        time.tzset()


def write_loop(orch: Orchestrator, text: str) -> Path:
    path = orch.state_dir / "work_loop_state.json"
    path.write_text(text)
    return path


def freezes(report: HealthReport) -> list[str]:
    return [i.error for i in report.issues if i.type == "orchestrator_freeze"]


def loop_errors(report: HealthReport) -> list[str]:
    return [
        i.error
        for i in report.issues
        if i.type == "state_file_error" and "work_loop_state" in i.error
    ]


def assert_sane_age(report: HealthReport, at_most: float) -> None:
    age = report.orchestrator_last_poll
    assert age is not None
    assert math.isfinite(age) and 0.0 <= age <= at_most, age


@pytest.mark.parametrize(
    "value",
    [time.time() + 3600, time.time() + 86400 * 365 * 50, 1e300],
    ids=["one_hour_ahead", "fifty_years_ahead", "absurdly_large"],
)
def test_future_timestamp_is_fresh_never_negative(
    value: float, orch: Orchestrator, ohm: MonitorFactory
) -> None:
    write_loop(orch, json.dumps({"last_update": value, "active_tasks": {}}))
    mon = ohm(orchestrator_freeze_threshold=FREEZE)
    report = mon.check()
    assert_sane_age(report, 1.0)
    assert not freezes(report)
    rows = q(mon.config.database_path, "SELECT last_poll_age_seconds FROM health_checks")
    assert rows and all(r[0] is not None and 0 <= r[0] <= 1 for r in rows)


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ('"yesterday"', "'yesterday'"),
        ('"2025-13-45T99:00:00"', "'2025-13-45T99:00:00'"),
        ("true", "True"),
        ("1", "1"),  # 1970: not a believable heartbeat, not a 55-year freeze
        ('{"t": 5}', "{'t': 5}"),
    ],
    ids=["words", "impossible_date", "bool", "epoch_1970", "object"],
)
def test_timestamp_as_text_or_junk_is_named_not_a_freeze(
    raw: str, shown: str, orch: Orchestrator, ohm: MonitorFactory
) -> None:
    path = write_loop(orch, '{"last_update": ' + raw + ', "active_tasks": {}}')
    mon = ohm(orchestrator_freeze_threshold=FREEZE)
    report = mon.check()
    assert not freezes(report)
    assert report.orchestrator_last_poll is None  # unknown, not a made-up age
    errors = loop_errors(report)
    assert any(str(path) in e and "last_update is not a time" in e and shown in e for e in errors)
    assert report.status == "degraded"


def test_epoch_as_numeric_text_is_read(orch: Orchestrator, ohm: MonitorFactory) -> None:
    write_loop(orch, json.dumps({"last_update": f"{time.time() - 5:.3f}"}))
    report = ohm(orchestrator_freeze_threshold=FREEZE).check()
    assert_sane_age(report, 10.0)
    assert report.orchestrator_last_poll is not None and report.orchestrator_last_poll >= 4.0
    assert not loop_errors(report) and not freezes(report)


@pytest.mark.parametrize("raw", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_named_not_a_freeze(
    raw: str, orch: Orchestrator, ohm: MonitorFactory
) -> None:
    path = write_loop(orch, '{"last_update": ' + raw + ', "active_tasks": {}}')
    mon = ohm(orchestrator_freeze_threshold=FREEZE)
    report = mon.check()
    assert not freezes(report)
    assert report.orchestrator_last_poll is None
    assert any(str(path) in e and "not a time" in e for e in loop_errors(report))
    # The row written for the check holds no NaN either.
    for (age,) in q(mon.config.database_path, "SELECT last_poll_age_seconds FROM health_checks"):
        assert age is None


ORCH_WRITER = textwrap.dedent(
    """\
    import datetime, json, os, sys, time
    state_dir, pid, minutes = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    naive = lambda ts: datetime.datetime.fromtimestamp(ts).isoformat()  # local, no offset
    now = time.time()
    with open(os.path.join(state_dir, "work_loop_state.json"), "w") as fh:
        json.dump({"last_poll": naive(now - minutes * 60), "active_tasks": {}}, fh)
    started = float(sys.argv[4])
    with open(os.path.join(state_dir, "agent_state.json"), "w") as fh:
        json.dump({"active_agents": {str(pid): {
            "pid": pid, "agent_type": "architect", "task_id": "spec-20",
            "command": "sh -c 'read x'", "started_at": naive(started),
            "status": "running"}}, "completed_agents": []}, fh)
    print(datetime.datetime.now().astimezone().strftime("%z"))
    """
)

ZONES = ["Pacific/Kiritimati", "Pacific/Pago_Pago", "Asia/Kathmandu", "America/St_Johns"]


@pytest.mark.parametrize("tz", ZONES, indirect=True)
def test_naive_local_times_under_far_time_zones(
    tz: str, orch: Orchestrator, ohm: MonitorFactory
) -> None:
    """The orchestrator writes naive local times in its zone (+14 h, -11 h, +5:45,
    -3:30/-2:30); ages come out right, never shifted by the offset."""
    agent = orch.start("architect", "spec-20")
    fresh = subprocess.run(
        [PY, "-c", ORCH_WRITER, str(orch.state_dir), str(agent.pid), "0", str(agent.started)],
        capture_output=True,
        text=True,
        env=python_env(),
        check=True,
    )
    offset = fresh.stdout.strip()
    assert offset not in ("+0000", "-0000")  # the zone really is far from UTC
    mon = ohm(orchestrator_freeze_threshold=FREEZE)
    report = mon.check()
    assert_sane_age(report, 5.0)
    assert not freezes(report)
    # The agent's naive start time matches its process: alive, not "PID reused".
    (view,) = [v for v in mon.snapshot().agents if v.pid == agent.pid]
    assert view.status == "running"
    assert view.started_at is not None and abs(view.started_at - agent.started) < 2.0

    # 89 minutes old, written the same way: a real freeze, with the right age.
    subprocess.run(
        [PY, "-c", ORCH_WRITER, str(orch.state_dir), str(agent.pid), "89", str(agent.started)],
        env=python_env(),
        check=True,
        capture_output=True,
    )
    report = mon.check()
    age = report.orchestrator_last_poll
    assert age is not None and abs(age - 89 * 60) < 10, age
    assert report.status == "critical" and freezes(report)
    assert count(mon.config.database_path, "SELECT COUNT(*) FROM agent_crashes") == 0
