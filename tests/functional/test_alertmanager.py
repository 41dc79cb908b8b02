"""A real Alertmanager receives ohm's alerts: firing, then resolved; acknowledged
issues are not sent; a down Alertmanager costs bounded retries, a ``notify_error``
event, and no delay to crash handling."""

from __future__ import annotations

import json
import signal
import socket
import socket as socket_mod
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ohm_tui.alerts.service import AlertService
from ohm_tui.engine.model import EventKind
from ohm_tui.engine.monitor import OrchestratorHealthMonitor
from tests.alertmanager import alertmanager, named
from tests.faults.kit import Orchestrator, base_config, count
from tests.helpers import ProcessReaper, wait_until


@pytest.fixture
def am(tmp_path: Path, reaper: ProcessReaper) -> Iterator[str]:
    with alertmanager(tmp_path / "am", reaper) as url:
        yield url


def _loop_state(data: Path, age: float) -> None:
    (data / "orchestrator" / "work_loop_state.json").write_text(
        json.dumps({"last_update": time.time() - age, "active_tasks": {}})
    )


def test_ohm_watch_sends_a_frozen_loop_then_its_resolution(
    tmp_path: Path, reaper: ProcessReaper, am: str
) -> None:
    data = tmp_path / "data"
    (data / "orchestrator").mkdir(parents=True)
    _loop_state(data, 3600.0)
    (data / "orchestrator" / "agent_state.json").write_text(
        json.dumps({"active_agents": {}, "completed_agents": []})
    )
    (data / "ohm.toml").write_text(
        f'orchestrator_match = ["ohm-am-no-orchestrator-{tmp_path.name}"]\n'
        f'alertmanager_url = "{am}"\n'
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "ohm_tui", "watch", "--data-dir", str(data), "--interval", "0.3",
         "--no-fix"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    reaper.add(proc)
    try:
        wait_until(lambda: named(am, "OhmLoopFrozen"), timeout=20, interval=0.2)
        (alert,) = named(am, "OhmLoopFrozen")
        labels = alert["labels"]
        assert labels["instance"] == socket.gethostname()
        assert labels["severity"] == "critical"
        assert labels["issue_id"] == "orchestrator_freeze:loop_stale"
        assert "loop frozen" in alert["annotations"]["description"]
        assert alert["annotations"]["summary"]
        # The loop reports again: the issue resolves, and so does the alert.
        _loop_state(data, 0.0)
        wait_until(lambda: not named(am, "OhmLoopFrozen"), timeout=20, interval=0.2)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=15)
    assert proc.returncode == 0


def _service(mon: OrchestratorHealthMonitor, **kw: object) -> AlertService:
    opts: dict[str, object] = {"resend_every": 0.5, "attempts": 3, "backoff": 0.05, "timeout": 1.0}
    opts.update(kw)
    service = AlertService(mon, **opts)  # type: ignore[arg-type]
    service.start()
    return service


def test_a_crash_fires_with_its_agent_and_cause_and_an_ack_ends_it(tmp_path: Path, am: str) -> None:
    data = tmp_path / "data"
    data.mkdir()
    orch = Orchestrator(data)
    mon = OrchestratorHealthMonitor(base_config(data, auto_fix=False, alertmanager_url=am))
    service = _service(mon)
    try:
        agent = orch.start("code_developer", "impl-7")
        wait_until(lambda: mon.check().active_agents == 1, timeout=10)
        mon.start()
        agent.crash()
        wait_until(lambda: named(am, "OhmAgentCrash"), timeout=20, interval=0.1)
        (alert,) = named(am, "OhmAgentCrash")
        assert alert["labels"]["agent_type"] == "code_developer"
        assert alert["labels"]["severity"] in ("warning", "critical")
        assert "RuntimeError" in alert["annotations"]["root_cause"]
        issue_id = alert["labels"]["issue_id"]
        # An operator acknowledges it: Alertmanager hears it ended, and while the
        # ack holds, the re-sends (every 0.5 s here) do not bring it back.
        mon.acknowledge(issue_id, by="test")
        wait_until(lambda: not named(am, "OhmAgentCrash"), timeout=10, interval=0.1)
        assert service.alertmanager is not None
        sent = service.alertmanager.sent
        wait_until(lambda: service.alertmanager.sent >= sent + 3, timeout=10)  # type: ignore[union-attr]
        assert not named(am, "OhmAgentCrash")
        assert any(i.issue_id == issue_id and i.ack for i in mon.check().issues)
    finally:
        service.stop()
        mon.close()
        orch.stop_all()


class BlackHole:
    """Accepts connections and never answers: an Alertmanager that hangs."""

    def __init__(self) -> None:
        self.sock = socket_mod.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.accepted = 0
        self.held: list[socket_mod.socket] = []
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def _run(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            self.held.append(conn)

    def close(self) -> None:
        self.sock.close()
        for c in self.held:
            c.close()


def test_a_down_alertmanager_retries_a_bounded_number_of_times_and_never_delays_crashes(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    orch = Orchestrator(data)
    hole = BlackHole()
    mon = OrchestratorHealthMonitor(
        base_config(data, auto_fix=False, alertmanager_url=hole.url, health_check_interval=5.0)
    )
    service = _service(mon, resend_every=3600.0, timeout=1.0, attempts=3, backoff=0.1)
    try:
        first, second = orch.start("code_developer", "impl-1"), orch.start("architect", "spec-2")
        wait_until(lambda: mon.check().active_agents == 2, timeout=10)
        mon.start()
        t0 = time.monotonic()
        first.crash()
        wait_until(lambda: count(mon.config.database_path, "SELECT COUNT(*) FROM agent_crashes"))
        wait_until(lambda: hole.accepted >= 1, timeout=5)  # the sender is stuck in a POST now
        # A second crash while the sender waits on the dead receiver: handled at once.
        t1 = time.monotonic()
        second.crash()
        wait_until(
            lambda: count(mon.config.database_path, "SELECT COUNT(*) FROM agent_crashes") == 2,
            timeout=2.0,
            message="crash recorded while Alertmanager hangs",
        )
        assert time.monotonic() - t1 < 2.0
        kinds = lambda: [e.kind for e in mon.events(limit=50)]  # noqa: E731
        wait_until(lambda: EventKind.NOTIFY_ERROR in kinds(), timeout=15)
        assert service.alertmanager is not None
        # Bounded: three tries for the first batch (and at most three for the second).
        assert service.alertmanager.failed >= 1
        assert hole.accepted <= 3 * (service.alertmanager.failed + 1)
        (err,) = [e for e in mon.events(limit=50) if e.kind == EventKind.NOTIFY_ERROR]
        assert "alertmanager" in err.message and "3 tries" in err.message
        assert time.monotonic() - t0 < 15
    finally:
        service.stop(timeout=2.0)
        hole.close()
        mon.close()
        orch.stop_all()
