"""Fixtures of the era suite: ``TZ`` far from UTC (as in the fault suite), so a
naive local time read as UTC, or a UTC one read as local, is 14 hours off."""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ohm_tui import OrchestratorHealthMonitor


@pytest.fixture(autouse=True)
def _far_from_utc() -> Iterator[None]:
    old = os.environ.get("TZ")
    os.environ["TZ"] = "Pacific/Kiritimati"
    time.tzset()
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("TZ", None)
        else:
            os.environ["TZ"] = old
        time.tzset()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    d = tmp_path / "data"
    d.mkdir()
    return d


def era_config(data_dir: Path, **extra: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "data_dir": str(data_dir),
        "health_check_interval": 0.2,
        "heartbeat_interval": 0.2,
        "respawn_backoff_base": 0.0,
        "orchestrator_match": [f"no-orchestrator-{uuid.uuid4().hex[:8]}"],
        "tickets_dir": "tickets",
    }
    cfg.update(extra)
    return cfg


@pytest.fixture
def monitor(data_dir: Path) -> Iterator[Any]:
    made: list[OrchestratorHealthMonitor] = []

    def make(**extra: Any) -> OrchestratorHealthMonitor:
        m = OrchestratorHealthMonitor(era_config(data_dir, **extra))
        made.append(m)
        return m

    yield make
    for m in made:
        for ev in m.events(limit=1000):
            if ev.kind in ("respawned", "spawned") and ev.agent_pid:
                with contextlib.suppress(OSError):
                    os.kill(ev.agent_pid, 9)
        m.close()
