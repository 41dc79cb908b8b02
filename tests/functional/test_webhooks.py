"""``[[notify]]`` destinations against a local receiver: slack, ntfy and signed json,
each told when an issue fires and when it resolves."""

from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ohm_tui.alerts.service import AlertService
from ohm_tui.engine.config import ConfigError
from ohm_tui.engine.monitor import OrchestratorHealthMonitor
from tests.faults.kit import base_config
from tests.helpers import wait_until
from tests.webhook_server import Receiver


@pytest.fixture
def data(tmp_path: Path) -> Path:
    d = tmp_path / "data"
    (d / "orchestrator").mkdir(parents=True)
    (d / "orchestrator" / "agent_state.json").write_text(
        json.dumps({"active_agents": {}, "completed_agents": []})
    )
    _loop(d, 3600.0)
    return d


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def _loop(data: Path, age: float) -> None:
    (data / "orchestrator" / "work_loop_state.json").write_text(
        json.dumps({"last_update": time.time() - age, "active_tasks": {}})
    )


def _firing_then_resolved(data: Path, notify: list[dict[str, Any]], receiver: Receiver) -> None:
    mon = OrchestratorHealthMonitor(base_config(data, auto_fix=False, notify=notify))
    service = AlertService(mon, window=0.2, min_interval=0.3, backoff=0.05)
    service.start()
    try:
        mon.start()
        wait_until(lambda: len(receiver.snapshot()) >= 1, timeout=10)
        _loop(data, 0.0)  # the loop reports again: the issue resolves
        wait_until(lambda: len(receiver.snapshot()) >= 2, timeout=10)
    finally:
        service.stop()
        mon.close()


def test_slack_gets_firing_then_resolved(data: Path, receiver: Receiver) -> None:
    _firing_then_resolved(data, [{"url": receiver.url, "format": "slack"}], receiver)
    first, second = receiver.snapshot()[:2]
    assert first.headers["content-type"] == "application/json"
    text = json.loads(first.body)["text"]
    assert "1 firing" in text and "FIRING [critical] OhmLoopFrozen" in text
    assert "RESOLVED [critical] OhmLoopFrozen" in json.loads(second.body)["text"]


def test_ntfy_gets_title_priority_and_tags_as_headers(data: Path, receiver: Receiver) -> None:
    _firing_then_resolved(data, [{"url": receiver.url, "format": "ntfy"}], receiver)
    first, second = receiver.snapshot()[:2]
    assert first.headers["title"].endswith(": 1 firing")
    assert first.headers["priority"] == "urgent"  # critical
    assert first.headers["tags"] == "rotating_light"
    assert b"OhmLoopFrozen" in first.body
    assert second.headers["title"].endswith(": 1 resolved")
    assert second.headers["tags"] == "white_check_mark"


def test_json_is_signed_as_standard_webhooks_sign(data: Path, tmp_path: Path) -> None:
    key = os.urandom(24)
    secret = tmp_path / "hook.secret"
    secret.write_text("whsec_" + base64.b64encode(key).decode() + "\n")
    secret.chmod(0o600)
    receiver = Receiver(key=key)
    try:
        notify = [{"url": receiver.url, "format": "json", "secret_file": str(secret)}]
        _firing_then_resolved(data, notify, receiver)
        messages = receiver.snapshot()
        assert all(m.signature_ok for m in messages), [m.headers for m in messages]
        assert len({m.headers["webhook-id"] for m in messages}) == len(messages)
        firing = json.loads(messages[0].body)
        assert firing["type"] == "ohm.alerts"
        (alert,) = firing["data"]["firing"]
        assert alert["labels"]["alertname"] == "OhmLoopFrozen"
        assert alert["status"] == "firing"
        resolved = json.loads(messages[1].body)["data"]["resolved"]
        assert resolved[0]["status"] == "resolved" and resolved[0]["ends_at"]
    finally:
        receiver.close()


def test_a_secret_file_others_can_read_is_refused(data: Path, tmp_path: Path) -> None:
    secret = tmp_path / "hook.secret"
    secret.write_text("s3cret-s3cret-s3cret")
    secret.chmod(0o644)
    notify = [{"url": "http://127.0.0.1:9/hook", "format": "json", "secret_file": str(secret)}]
    mon = OrchestratorHealthMonitor(base_config(data, notify=notify))
    try:
        with pytest.raises(ConfigError, match=r"notify\[0\].secret_file.*readable by others"):
            AlertService(mon)
    finally:
        mon.close()


def test_changes_held_by_the_window_go_out_when_ohm_stops(data: Path, receiver: Receiver) -> None:
    notify = [{"url": receiver.url, "format": "slack"}]
    mon = OrchestratorHealthMonitor(base_config(data, auto_fix=False, notify=notify))
    service = AlertService(mon, window=3600.0, min_interval=3600.0)
    service.start()
    try:
        mon.check()  # the frozen loop: one alert, held for an hour-long window
        (dest,) = service.destinations
        wait_until(lambda: dest.held == 1, timeout=5)
        assert receiver.snapshot() == []
    finally:
        service.stop()
        mon.close()
    (message,) = receiver.snapshot()
    assert "OhmLoopFrozen" in json.loads(message.body)["text"]


def test_ohm_watch_refuses_a_loose_secret_file_with_its_reason(data: Path, tmp_path: Path) -> None:
    import subprocess
    import sys

    secret = tmp_path / "hook.secret"
    secret.write_text("s3cret-s3cret-s3cret")
    secret.chmod(0o644)
    (data / "ohm.toml").write_text(
        f'orchestrator_match = ["ohm-no-orchestrator-{tmp_path.name}"]\n'
        f'[[notify]]\nurl = "http://127.0.0.1:9/hook"\nformat = "json"\nsecret_file = "{secret}"\n'
    )
    done = subprocess.run(
        [sys.executable, "-m", "ohm_tui", "watch", "--data-dir", str(data), "--no-fix"],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode != 0
    assert "notify[0].secret_file" in done.stderr and "chmod 600" in done.stderr


def test_an_unreachable_webhook_is_a_notify_error_that_keeps_its_url_secret(data: Path) -> None:
    from ohm_tui.engine.model import EventKind
    from tests.alertmanager import free_port

    url = f"http://127.0.0.1:{free_port()}/services/T0/B0/SECRET123"  # nobody listens
    mon = OrchestratorHealthMonitor(
        base_config(data, auto_fix=False, notify=[{"url": url, "format": "slack"}])
    )
    service = AlertService(mon, window=0.1, min_interval=0.1, attempts=2, backoff=0.05)
    service.start()
    try:
        mon.check()

        def errors() -> list[str]:
            return [e.message for e in mon.events(limit=20) if e.kind == EventKind.NOTIFY_ERROR]

        wait_until(errors, timeout=10)
        (message,) = errors()
        assert "2 tries" in message and "http://127.0.0.1" in message
        assert "SECRET123" not in message
    finally:
        service.stop(flush=0.5)
        mon.close()


def test_the_console_sends_too(data: Path, tmp_path: Path, receiver: Receiver) -> None:
    """The real console in a real terminal: its engine's alerts reach the webhook."""
    import signal

    from tests.functional.test_cli import PtyRun

    (data / "ohm.toml").write_text(
        f'orchestrator_match = ["ohm-no-orchestrator-{tmp_path.name}"]\n'
        f'[[notify]]\nurl = "{receiver.url}"\nformat = "slack"\n'
    )
    run = PtyRun(tmp_path, "--data-dir", str(data))
    try:
        wait_until(lambda: run.shows(b"Quit"), timeout=20)
        wait_until(lambda: receiver.snapshot(), timeout=20, interval=0.1)
        assert "OhmLoopFrozen" in json.loads(receiver.snapshot()[0].body)["text"]
        os.kill(run.pid, signal.SIGTERM)
        wait_until(run.exited, timeout=20)
        assert run.status == 0
        assert "Traceback" not in run.text
    finally:
        run.close()


def test_a_console_beside_ohm_watch_does_not_send_the_same_alert_again(
    data: Path, tmp_path: Path, receiver: Receiver
) -> None:
    """Two writable monitors on one data dir see the same issues; only the one holding
    the fixer lease (here ``ohm watch``) tells the webhook."""
    import subprocess
    import sys

    (data / "ohm.toml").write_text(
        f'orchestrator_match = ["ohm-no-orchestrator-{tmp_path.name}"]\n'
        "health_check_interval = 0.2\nlease_ttl = 30\n"
        f'[[notify]]\nurl = "{receiver.url}"\nformat = "slack"\n'
    )
    watch = subprocess.Popen(
        [sys.executable, "-m", "ohm_tui", "watch", "--data-dir", str(data)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: len(receiver.snapshot()) >= 1, timeout=30)  # watch: firing
        console = OrchestratorHealthMonitor(str(data / "ohm.toml"), name="console")
        service = AlertService(console, window=0.1, min_interval=0.1, backoff=0.05)
        service.start()
        try:
            console.start()
            wait_until(lambda: service.book.firing, timeout=10)  # the console sees it too
            _loop(data, 0.0)  # resolves: watch sends "resolved"
            wait_until(lambda: "RESOLVED" in "".join(_texts(receiver)), timeout=20)
            wait_until(lambda: not service.book.firing and not any(service.queued()), timeout=10)
        finally:
            service.stop()
            console.close()
        lines = "\n".join(_texts(receiver)).splitlines()
        assert sum(x.startswith("FIRING") for x in lines) == 1, lines
        assert sum(x.startswith("RESOLVED") for x in lines) == 1, lines
    finally:
        watch.terminate()
        watch.wait(timeout=20)


def _texts(receiver: Receiver) -> list[str]:
    return [json.loads(m.body)["text"] for m in receiver.snapshot()]
