"""A real Alertmanager for tests: loopback port, temporary storage, no cluster."""

from __future__ import annotations

import json
import socket
import subprocess
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.binaries import require_binary
from tests.helpers import ProcessReaper, wait_until

CONFIG = """\
route:
  receiver: "null"
  group_wait: 1s
receivers:
  - name: "null"
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/-/ready", timeout=2) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


@contextmanager
def alertmanager(root: Path, reaper: ProcessReaper) -> Iterator[str]:
    """Start Alertmanager; yields its base URL (``http://127.0.0.1:PORT``)."""
    binary = require_binary("alertmanager", "prometheus-alertmanager")
    root.mkdir(parents=True, exist_ok=True)
    (root / "alertmanager.yml").write_text(CONFIG)
    port = free_port()
    log = (root / "alertmanager.log").open("wb")
    proc = subprocess.Popen(
        [binary, f"--config.file={root / 'alertmanager.yml'}",
         f"--storage.path={root / 'storage'}", f"--web.listen-address=127.0.0.1:{port}",
         "--cluster.listen-address="],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        cwd=root,
    )  # fmt: skip
    reaper.add(proc)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _ready(url), timeout=30, interval=0.1, message="Alertmanager ready")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


def active_alerts(url: str) -> list[dict[str, Any]]:
    """``GET /api/v2/alerts``: the alerts Alertmanager holds that have not ended."""
    with urllib.request.urlopen(f"{url}/api/v2/alerts", timeout=5) as resp:
        alerts: list[dict[str, Any]] = json.loads(resp.read())
    return alerts


def named(url: str, alertname: str) -> list[dict[str, Any]]:
    return [a for a in active_alerts(url) if a["labels"].get("alertname") == alertname]
