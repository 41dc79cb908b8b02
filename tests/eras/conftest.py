"""Fixtures of the era suite: ``TZ`` far from UTC (as in the fault suite), so a
naive local time read as UTC, or a UTC one read as local, is 14 hours off."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ohm_tui import OrchestratorHealthMonitor


@pytest.fixture(autouse=True)
def _far_from_utc(far_from_utc: None) -> None:
    """Every test here runs 14 hours from UTC (see tests/conftest.py)."""


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
