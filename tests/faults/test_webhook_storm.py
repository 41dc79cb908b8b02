"""Webhooks during a crash storm: 200 real agents crash within a second (and every
respawn crashes again); a signed json destination gets a handful of grouped
messages, each verified by the receiver, not one message per crash."""

from __future__ import annotations

import json
import os
from pathlib import Path

from ohm_tui.alerts.service import AlertService
from tests.faults import storm
from tests.faults.kit import MonitorFactory, Orchestrator
from tests.helpers import wait_until
from tests.webhook_server import Receiver

MAX_MESSAGES = 12  # a 2 s window and one message per 5 s over a storm of some 30 s


def test_a_crash_storm_is_a_handful_of_signed_messages(
    orch: Orchestrator, ohm: MonitorFactory, tmp_path: Path
) -> None:
    orch.fmt = "ohm"
    key = os.urandom(32)
    secret = tmp_path / "hook.secret"
    secret.write_bytes(key.hex().encode())
    secret.chmod(0o600)
    receiver = Receiver(key=key.hex().encode())  # a plain secret is its own bytes
    agents = storm.start_agents(orch)
    notify = [{"url": receiver.url, "format": "json", "secret_file": str(secret)}]
    mon = ohm(**storm.CONFIG, notify=notify)
    service = AlertService(mon, window=2.0, min_interval=5.0, backoff=0.1)
    service.start()
    try:
        wait_until(lambda: mon.check().active_agents == storm.AGENTS, timeout=10)
        mon.start()
        assert storm.crash_all(agents) < 1.0
        wait_until(
            lambda: storm.settled(mon.config.database_path),
            timeout=60,
            interval=0.2,
            message="storm handled",
        )
        (dest,) = service.destinations
        done = dest.sender  # every queued message posted (or given up): none in flight

        wait_until(
            lambda: (
                dest.messages >= 1
                and dest.held == 0
                and done.sent + done.failed + done.dropped == dest.messages
            ),
            timeout=30,
        )
        messages = receiver.snapshot()
    finally:
        service.stop()
        mon.stop()
        receiver.close()
    assert 1 <= len(messages) <= MAX_MESSAGES, len(messages)
    assert all(m.signature_ok for m in messages)
    documents = [json.loads(m.body)["data"] for m in messages]
    names = {a["labels"]["alertname"] for d in documents for a in d["firing"]}
    assert {"OhmCrashStorm", "OhmAgentCrash"} <= names, names
    covered = sum(d["firing_count"] + d["resolved_count"] for d in documents)
    assert covered >= storm.TASKS, covered
    assert covered >= 5 * len(messages), (covered, len(messages))  # many alerts, few messages
    assert service.alertmanager is None and dest.sender.failed == 0
