"""Fixtures of the fault suite: a data dir, a stand-in orchestrator, monitors on it.

Every fault case runs with ``TZ`` far from UTC (+14 h), the orchestrator and ohm
alike: naive local times that were silently read as UTC would be 14 hours off.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults.kit import MonitorFactory, Orchestrator


@pytest.fixture(autouse=True)
def _far_from_utc(far_from_utc: None) -> None:
    """Every test here runs 14 hours from UTC (see tests/conftest.py)."""


@pytest.fixture
def orch(data_dir: Path) -> Iterator[Orchestrator]:
    o = Orchestrator(data_dir)
    try:
        yield o
    finally:
        o.stop_all()


@pytest.fixture
def ohm(data_dir: Path) -> Iterator[MonitorFactory]:
    f = MonitorFactory(data_dir)
    try:
        yield f
    finally:
        f.close()
