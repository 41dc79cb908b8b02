"""Fixtures for every test: isolation from the developer's files, and process cleanup."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import ProcessReaper


@pytest.fixture(autouse=True)
def _isolate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """HOME and the working directory are a temp dir: tests never touch real files."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(tmp_path)
    yield
    # A warm spare runner (see spawner.set_prewarm) is a process too: stop it, and
    # reap runners whose agents ended so that no zombie outlives its test.
    spawner = sys.modules.get("ohm_tui.engine.system.spawner")
    if spawner is not None:
        spawner.shutdown_spares()
        spawner.reap_children()


@pytest.fixture
def reaper() -> Iterator[ProcessReaper]:
    """Register processes with ``reaper.add(...)``; all are killed at teardown."""
    r = ProcessReaper()
    try:
        yield r
    finally:
        r.cleanup()
