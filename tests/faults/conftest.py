"""Fixtures of the fault suite: a data dir, a stand-in orchestrator, monitors on it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults.kit import MonitorFactory, Orchestrator


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    d = tmp_path / "data"
    d.mkdir()
    return d


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
