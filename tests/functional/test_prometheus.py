"""The shipped Prometheus rules, checked by promtool and fired by a real Prometheus.

End to end: three ``ohm watch --listen`` processes on three data dirs, one of
them with a frozen loop, scraped every second by a real Prometheus; the shipped
``OhmLoopFrozen`` rule fires for that instance only (``/api/v1/alerts``).
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.binaries import require_binary
from tests.helpers import ProcessReaper, wait_until

REPO = Path(__file__).resolve().parents[2]
CONTRIB = REPO / "contrib" / "prometheus"


def test_rules_pass_promtool_check() -> None:
    promtool = require_binary("promtool")
    proc = subprocess.run(
        [promtool, "check", "rules", str(CONTRIB / "ohm-rules.yml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS: 5 rules found" in proc.stdout


def test_rules_unit_tests_pass() -> None:
    promtool = require_binary("promtool")
    proc = subprocess.run(
        [promtool, "test", "rules", "ohm-rules.test.yml"],
        cwd=CONTRIB,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    tests = (CONTRIB / "ohm-rules.test.yml").read_text()
    for alert in ("OhmLoopFrozen", "OhmAgentCrashRate", "OhmAgentGivenUp", "OhmStatusCritical"):
        assert f"alertname: {alert}" in tests
    assert "alertname: OhmDown" in tests


def test_every_rule_has_summary_and_description() -> None:
    text = (CONTRIB / "ohm-rules.yml").read_text()
    alerts = re.findall(r"- alert: (\w+)", text)
    assert len(alerts) == 5
    for block in text.split("- alert: ")[1:]:
        assert "summary:" in block and "description:" in block, block[:40]


def test_example_scrape_config_is_valid(tmp_path: Path) -> None:
    promtool = require_binary("promtool")
    token = tmp_path / "ohm.token"
    token.write_text("x" * 32)
    config = (CONTRIB / "prometheus.yml").read_text()
    assert "/etc/prometheus/ohm.token" in config
    config = config.replace("/etc/prometheus/ohm.token", str(token))
    (tmp_path / "prometheus.yml").write_text(config)
    shutil.copy(CONTRIB / "ohm-rules.yml", tmp_path / "ohm-rules.yml")
    proc = subprocess.run(
        [promtool, "check", "config", "prometheus.yml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


# ---------------------------------------------------------------- end to end


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def state_dir(root: Path, *, loop_age: float) -> Path:
    """A real-format state dir whose loop last reported ``loop_age`` seconds ago."""
    data = root / "data"
    orch = data / "orchestrator"
    orch.mkdir(parents=True)
    (orch / "work_loop_state.json").write_text(
        json.dumps({"last_update": time.time() - loop_age, "active_tasks": {}})
    )
    (orch / "agent_state.json").write_text(
        json.dumps({"active_agents": {}, "completed_agents": []})
    )
    match = f"ohm-e2e-no-orchestrator-{root.name}"
    (data / "ohm.toml").write_text(f'orchestrator_match = ["{match}"]\n')
    return data


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return json.loads(resp.read())


@pytest.fixture
def watches(tmp_path: Path, reaper: ProcessReaper) -> Iterator[list[tuple[str, str]]]:
    """Three ``ohm watch --listen`` processes: (name, host:port); ``frozen`` has a stale loop."""
    started: list[tuple[str, str, subprocess.Popen[bytes]]] = []
    for name, age in (("fresh-1", 0.0), ("frozen", 3600.0), ("fresh-2", 0.0)):
        data = state_dir(tmp_path / name, loop_age=age)
        port = free_port()
        proc = subprocess.Popen(
            [sys.executable, "-m", "ohm_tui", "watch", "--data-dir", str(data), "--interval",
             "0.5", "--no-fix", "--listen", f"127.0.0.1:{port}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
        )  # fmt: skip
        reaper.add(proc)
        started.append((name, f"127.0.0.1:{port}", proc))
    for _, hostport, _ in started:
        wait_until(
            lambda hp=hostport: _up(f"http://{hp}/healthz"),
            timeout=20,
            interval=0.1,
            message=f"ohm watch on {hostport} answers /healthz",
        )
    try:
        yield [(n, hp) for n, hp, _ in started]
    finally:
        for _, _, proc in started:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for _, _, proc in started:
            proc.wait(timeout=15)


def _up(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


def test_shipped_rule_fires_for_the_frozen_instance(
    tmp_path: Path, reaper: ProcessReaper, watches: list[tuple[str, str]]
) -> None:
    prometheus = require_binary("prometheus")
    rules = (CONTRIB / "ohm-rules.yml").read_text()
    (tmp_path / "ohm-rules.yml").write_text(rules)  # exactly the shipped rules
    targets = ", ".join(f'"{hp}"' for _, hp in watches)
    (tmp_path / "prometheus.yml").write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "rule_files: [ohm-rules.yml]\n"
        f"scrape_configs:\n  - job_name: ohm\n    static_configs:\n      - targets: [{targets}]\n"
    )
    port = free_port()
    log = (tmp_path / "prometheus.log").open("wb")
    proc = subprocess.Popen(
        [prometheus, f"--config.file={tmp_path / 'prometheus.yml'}",
         f"--storage.tsdb.path={tmp_path / 'tsdb'}", f"--web.listen-address=127.0.0.1:{port}"],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        cwd=tmp_path,
    )  # fmt: skip
    reaper.add(proc)
    api = f"http://127.0.0.1:{port}/api/v1"
    try:
        wait_until(lambda: _up(f"http://127.0.0.1:{port}/-/ready"), timeout=30, interval=0.2)

        def all_up() -> bool:
            result = get_json(f"{api}/query?query=up")["data"]["result"]
            return len(result) == 3 and all(r["value"][1] == "1" for r in result)

        wait_until(all_up, timeout=30, interval=0.5, message="Prometheus scrapes all three")

        frozen = dict(watches)["frozen"]

        def firing() -> list[dict[str, Any]]:
            alerts = get_json(f"{api}/alerts")["data"]["alerts"]
            return [
                a for a in alerts if a["labels"]["alertname"] == "OhmLoopFrozen"
                and a["state"] == "firing"
            ]  # fmt: skip

        wait_until(lambda: firing(), timeout=30, interval=0.5, message="OhmLoopFrozen fires")
        fired = firing()
        assert [a["labels"]["instance"] for a in fired] == [frozen]
        assert fired[0]["labels"]["severity"] == "critical"
        assert "frozen" in fired[0]["annotations"]["summary"]
        status = get_json(f"{api}/query?query=ohm_health_status")["data"]["result"]
        by_instance = {r["metric"]["instance"]: r["value"][1] for r in status}
        assert by_instance[frozen] == "2"
        assert all(v in ("0", "1") for i, v in by_instance.items() if i != frozen), by_instance
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        log.close()
