"""The HTTP endpoint of ``ohm watch --listen``: metrics, JSON API, auth, textfile mode."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from ohm_tui.cli.main import main
from ohm_tui.engine.monitor import OrchestratorHealthMonitor
from ohm_tui.web.access import AccessError, parse_listen, read_token_file
from ohm_tui.web.server import WebServer
from tests.functional.test_prometheus import state_dir
from tests.helpers import wait_until

NAMES = {
    "ohm_health_status",
    "ohm_issues",
    "ohm_agents",
    "ohm_agent_crashes",
    "ohm_agent_respawns",
    "ohm_agent_giveups",
    "ohm_orchestrator_heartbeat_timestamp_seconds",
    "ohm_bugs_open",
    "ohm_check_duration_seconds",
    "ohm_build_info",
}


def get(url: str, token: str | None = None) -> tuple[int, bytes]:
    req = urllib.request.Request(url)
    if token is not None:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return int(resp.status), resp.read()
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read()


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def config(data: Path, **extra: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "data_dir": str(data),
        "health_check_interval": 0.2,
        "respawn_backoff_base": 0.0,
        "max_respawn_attempts": 1,
        "orchestrator_match": [f"no-orchestrator-{data.parent.name}"],
    }
    cfg.update(extra)
    return cfg


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return state_dir(tmp_path / "host", loop_age=0.0)


@pytest.fixture
def served(data: Path) -> Iterator[tuple[OrchestratorHealthMonitor, WebServer]]:
    monitor = OrchestratorHealthMonitor(config(data))
    server = WebServer(monitor, parse_listen("127.0.0.1:0"))
    monitor.start()
    server.start()
    try:
        yield monitor, server
    finally:
        server.stop()
        monitor.stop()
        monitor.close()


def crash_total(text: str) -> float:
    return sum(v for (n, _), v in samples(text).items() if n == "ohm_agent_crashes_total")


def test_metrics_and_api_match_the_cli_json(
    served: tuple[OrchestratorHealthMonitor, WebServer], data: Path
) -> None:
    monitor, server = served
    view = monitor.simulate_crash("architect", "ImportError")
    wait_until(lambda: monitor.crashes(), timeout=15, message="the crash is recorded")
    wait_until(
        lambda: crash_total(get(server.url + "/metrics")[1].decode()) >= 1,
        timeout=10,
        message="the crash is counted in /metrics",
    )
    status, body = get(server.url + "/metrics")
    assert status == 200
    got = samples(body.decode())
    names = {fam.name for fam in text_string_to_metric_families(body.decode())}
    assert names >= NAMES
    key = ("ohm_agent_crashes_total", (("agent_type", "architect"), ("error_type", "ImportError")))
    assert got[key] >= 1
    assert not any("pid" in dict(labels) or "task" in dict(labels) for _, labels in got)
    # The API answers the CLI's --json documents.
    status, body = get(server.url + "/api/v1/crashes?last=1h")
    assert status == 200
    crashes = json.loads(body)
    first = next(c for c in crashes if c["agent_key"] == view.key)
    assert first["error_type"] == "ImportError"
    assert crashes == [r.to_dict() for r in monitor.crashes(0.0)][: len(crashes)]
    status, body = get(server.url + "/api/v1/status")
    doc = json.loads(body)
    assert status == 200 and {"status", "issues", "metrics", "checked_at"} <= set(doc)
    status, body = get(server.url + "/api/v1/agents")
    agents = json.loads(body)
    assert status == 200 and isinstance(agents, list)
    assert all({"key", "status", "agent_type"} <= set(a) for a in agents)
    status, body = get(server.url + "/api/v1/events?last=1h")
    events = json.loads(body)
    assert status == 200 and any(e["kind"] == "simulated" for e in events), body[:300]
    status, body = get(server.url + "/api/v1/bugs?status=all")
    assert status == 200 and isinstance(json.loads(body), list)
    assert get(server.url + "/api/v1/events?last=soon")[0] == 400
    assert get(server.url + "/nothing")[0] == 404


def test_counters_survive_a_restart_of_ohm(data: Path) -> None:
    with OrchestratorHealthMonitor(config(data)) as monitor:
        monitor.start()
        monitor.simulate_crash("architect", "ImportError")
        wait_until(lambda: monitor.crashes(), timeout=15, message="the crash is recorded")
        monitor.stop()
    monitor = OrchestratorHealthMonitor(config(data))
    server = WebServer(monitor, parse_listen("127.0.0.1:0"))
    server.start()
    try:
        wait_until(lambda: get(server.url + "/metrics")[0] == 200, timeout=10)
        assert crash_total(get(server.url + "/metrics")[1].decode()) >= 1
    finally:
        server.stop()
        monitor.close()


def test_healthz_fails_when_checks_stop(
    served: tuple[OrchestratorHealthMonitor, WebServer],
) -> None:
    monitor, server = served
    wait_until(lambda: get(server.url + "/healthz")[0] == 200, timeout=10)
    monitor.stop()  # ohm's loop stops checking; the endpoint stays up
    wait_until(lambda: get(server.url + "/healthz")[0] == 503, timeout=10)
    assert json.loads(get(server.url + "/healthz")[1])["ok"] is False


def write_token(path: Path, mode: int = 0o600) -> str:
    token = "t0k3n-" + "a" * 26
    path.write_text(token + "\n")
    path.chmod(mode)
    return token


def test_every_endpoint_needs_the_token(data: Path, tmp_path: Path) -> None:
    token = write_token(tmp_path / "token")
    monitor = OrchestratorHealthMonitor(config(data))
    server = WebServer(monitor, parse_listen("127.0.0.1:0"), read_token_file(tmp_path / "token"))
    server.start()
    try:
        wait_until(lambda: get(server.url + "/metrics", token)[0] == 200, timeout=10)
        for path in server.api.routes:
            assert get(server.url + path)[0] == 401, path
            assert get(server.url + path, "wrong-token-wrong-token")[0] == 401, path
            assert get(server.url + path, token)[0] in (200, 503), path
    finally:
        server.stop()
        monitor.close()


def test_off_loopback_needs_a_token(data: Path) -> None:
    monitor = OrchestratorHealthMonitor(config(data))
    with pytest.raises(AccessError, match="token"):
        WebServer(monitor, parse_listen("0.0.0.0:0"))
    monitor.close()


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o620])
def test_token_file_others_can_read_is_refused(tmp_path: Path, mode: int) -> None:
    write_token(tmp_path / "token", mode)
    with pytest.raises(AccessError, match="refusing"):
        read_token_file(tmp_path / "token")


@pytest.mark.parametrize(
    "text", ["9464", "localhost", "host.example:9464", "::1:9464", "1.2.3.4:x"]
)
def test_bad_listen_addresses(text: str) -> None:
    with pytest.raises(AccessError):
        parse_listen(text)


def test_watch_refuses_non_loopback_without_token(
    data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = main(["watch", "--data-dir", str(data), "--listen", "0.0.0.0:0"])
    assert rc == 2
    assert "token" in capsys.readouterr().err


def test_check_prom_file_writes_metrics_atomically(data: Path, tmp_path: Path) -> None:
    target = tmp_path / "textfile" / "ohm.prom"
    target.parent.mkdir()
    target.write_text("old\n")
    rc = main(["check", "--data-dir", str(data), "--prom-file", str(target)])
    assert rc in (0, 1)
    text = target.read_text()
    names = {fam.name for fam in text_string_to_metric_families(text)}
    assert names >= NAMES - {"ohm_agent_crashes", "ohm_agent_respawns", "ohm_agent_giveups"} or (
        names >= NAMES
    )
    assert samples(text)[("ohm_health_status", ())] == rc
    assert os.listdir(target.parent) == ["ohm.prom"]  # no temp file left
