"""Fixtures for every test: isolation from the developer's files, and process cleanup."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.helpers import ProcessReaper

if TYPE_CHECKING:
    from ohm_tui.engine.system.spawner import Spawner


@pytest.fixture(autouse=True)
def _isolate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """HOME and the working directory are a temp dir: tests never touch real files."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(tmp_path)
    yield
    # A warm spare runner (see Spawner.set_prewarm) is a process too: stop every
    # spawner's (monitors a test never stopped have one), and reap runners whose
    # agents ended so that no zombie outlives its test.
    spawner = sys.modules.get("ohm_tui.engine.system.spawner")
    if spawner is not None:
        for each in spawner.live_spawners():
            each.close()


@pytest.fixture
def agent_spawner() -> Iterator[Spawner]:
    """A Spawner of the test's own (no monitor), closed at teardown."""
    from ohm_tui.engine.system.spawner import Spawner  # imported lazily, as above

    s = Spawner(name="test")
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def reaper() -> Iterator[ProcessReaper]:
    """Register processes with ``reaper.add(...)``; all are killed at teardown."""
    r = ProcessReaper()
    try:
        yield r
    finally:
        r.cleanup()


@pytest.fixture
def far_from_utc() -> Iterator[None]:
    """``TZ`` 14 hours east of UTC: a naive local time read as UTC (or the reverse)
    is then 14 hours off, and a test sees it."""
    old = os.environ.get("TZ")
    os.environ["TZ"] = "Pacific/Kiritimati"  # UTC+14
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
    """An empty state directory (``data/``) for the test to fill."""
    d = tmp_path / "data"
    d.mkdir()
    return d
