"""Alerts out, the parts without a network: names, diffs, grouping, signing, config."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ohm_tui.alerts import alertmanager
from ohm_tui.alerts.http import DeliveryError
from ohm_tui.alerts.model import ALERT_NAMES, Alert, AlertBook, alert_name
from ohm_tui.alerts.sender import Sender
from ohm_tui.alerts.webhooks import WebhookDestination, secret_key, sign
from ohm_tui.engine.config import ConfigError, config_from_mapping
from ohm_tui.engine.model import Ack, HealthReport, Issue, IssueType


def _report(issues: list[Issue], at: float) -> HealthReport:
    return HealthReport("critical", issues, 0, 0, None, None, checked_at=at)


def _crash(task: str, *, acked: bool = False) -> Issue:
    issue = Issue(
        type="agent_crash",
        severity="critical",
        error=f"code_developer {task} crashed",
        agent_type="code_developer",
        task_id=task,
        issue_id=f"agent_crash:task:{task}",
        bug_number=3,
    )
    if acked:
        ack_id = issue.issue_id or ""
        issue.ack = Ack(1, ack_id, "agent_crash", "me", 1.0, None, "critical", 1, None, "")
    return issue


def test_every_issue_type_has_its_own_alertname() -> None:
    assert set(ALERT_NAMES) == set(IssueType)
    assert len(set(ALERT_NAMES.values())) == len(IssueType)
    assert alert_name("agent_crash") == "OhmAgentCrash"
    assert alert_name("orchestrator_freeze") == "OhmLoopFrozen"
    assert alert_name("something_new") == "OhmSomethingNew"


def test_the_book_starts_and_ends_alerts_and_acked_issues_do_not_fire() -> None:
    book = AlertBook("host-a")
    started, ended = book.update(_report([_crash("impl-1"), _crash("impl-2")], 100.0))
    assert len(started) == 2 and not ended
    (a,) = [x for x in started if x.labels["issue_id"] == "agent_crash:task:impl-1"]
    assert a.labels == {
        "alertname": "OhmAgentCrash",
        "instance": "host-a",
        "severity": "critical",
        "issue_id": "agent_crash:task:impl-1",
        "agent_type": "code_developer",
    }
    assert a.annotations["bug_number"] == "BUG-003"
    # Still open: nothing new. impl-2 acknowledged: its alert ends.
    started, ended = book.update(_report([_crash("impl-1"), _crash("impl-2", acked=True)], 110.0))
    assert not started
    assert [e.labels["issue_id"] for e in ended] == ["agent_crash:task:impl-2"]
    assert ended[0].ends_at == 110.0
    (still,) = book.firing.values()
    assert still.starts_at == 100.0  # the first time it fired, kept across checks


def test_alertmanager_payload_has_the_api_v2_shape() -> None:
    firing = Alert({"alertname": "OhmCrashStorm"}, {"summary": "s"}, starts_at=0.0)
    ended = Alert({"alertname": "OhmZombie"}, {}, starts_at=0.0, ends_at=30.0)
    body = alertmanager.payload([firing, ended], 60.0, resend_every=60.0)
    assert body[0] == {
        "labels": {"alertname": "OhmCrashStorm"},
        "annotations": {"summary": "s"},
        "startsAt": "1970-01-01T00:00:00Z",
        "endsAt": "1970-01-01T00:05:00Z",  # four re-send periods ahead
    }
    assert body[1]["endsAt"] == "1970-01-01T00:00:30Z"


def test_standard_webhooks_signature_matches_the_reference_vector() -> None:
    # The example of the Standard Webhooks specification's reference libraries.
    key = secret_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    got = sign(key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, b'{"test": 2432232314}')
    assert got == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    assert secret_key("plain") == b"plain"


def test_changes_are_grouped_per_window_and_rate_limited() -> None:
    dest = WebhookDestination(
        "http://127.0.0.1:9/", "json", "h", lambda m: None, window=2.0, min_interval=10.0
    )
    book = AlertBook("h")
    t = 1000.0
    for n in range(200):  # 200 crashes within a second
        started, ended = book.update(_report([_crash(f"impl-{n}")], t + n / 200))
        dest.add(started, ended, t + n / 200)
        assert not dest.tick(t + n / 200)
    assert dest.tick(t + 2.0)  # one message once the window has passed
    assert dest.messages == 1 and dest.held == 0
    started, ended = book.update(_report([], t + 3.0))
    dest.add(started, ended, t + 3.0)
    assert not dest.tick(t + 6.0)  # window passed, but the rate limit holds it
    assert dest.tick(t + 12.0)
    assert dest.messages == 2
    body = json.loads(dest.sender._queue[-1].body)["data"]
    assert body["resolved_count"] == 1 and body["firing_count"] == 0


def test_a_full_queue_drops_the_oldest_and_counts_it() -> None:
    def never(item: Any) -> None:
        raise DeliveryError("down")

    sender: Sender[int] = Sender("t", never, lambda m: None, queue_size=3)
    for n in range(5):
        sender.put(n)
    assert list(sender._queue) == [2, 3, 4] and sender.dropped == 2


@pytest.mark.parametrize(
    ("value", "key", "words"),
    [
        ({"alertmanager_url": "127.0.0.1:9093"}, "alertmanager_url", "http://"),
        ({"notify": [{"format": "slack"}]}, "notify[0].url", "missing"),
        ({"notify": [{"url": "https://x.example/h", "format": "teams"}]}, "notify[0].format",
         "slack, ntfy, json"),
        ({"notify": [{"url": "https://x.example/h", "format": "json"}]}, "notify[0].secret_file",
         "secret"),
        ({"notify": [{"url": "https://x.example/h", "format": "ntfy", "min_severity": "low"}]},
         "notify[0].min_severity", "warning, critical"),
        ({"notify": [{"url": "https://x.example/h", "format": "ntfy", "topic": "x"}]},
         "notify[0].topic", "unknown"),
        ({"notify": "https://x.example/h"}, "notify", "tables"),
    ],
)  # fmt: skip
def test_bad_alert_config_names_the_key(value: dict[str, Any], key: str, words: str) -> None:
    with pytest.raises(ConfigError) as caught:
        config_from_mapping(value)
    assert caught.value.key == key and words in caught.value.message


def test_good_alert_config() -> None:
    cfg = config_from_mapping(
        {
            "alertmanager_url": "http://127.0.0.1:9093",
            "notify": [
                {"url": "https://hooks.slack.com/services/T/B/X", "format": "slack"},
                {"url": "https://ntfy.sh/ohm", "format": "ntfy", "min_severity": "critical"},
                {"url": "https://ops.example/ohm", "format": "json", "secret_file": "hook.secret"},
            ],
        }
    )
    assert cfg.alertmanager_url == "http://127.0.0.1:9093"
    assert [n["format"] for n in cfg.notify] == ["slack", "ntfy", "json"]
    assert cfg.notify[0]["min_severity"] == "warning"
