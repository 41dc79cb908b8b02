"""A monitor's read-only mode is fixed when it is made.

``make_app(monitor, read_only=True)`` once flipped ``read_only`` on a monitor whose
store was already open read-write: the monitor then claimed to be an observer
while holding a writable database. Now the console refuses actions itself and
the monitor stays what it was made.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ohm_tui.engine.monitor import OrchestratorHealthMonitor
from ohm_tui.tui.app import make_app


def test_make_app_read_only_does_not_flip_an_opened_monitor(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    with OrchestratorHealthMonitor(data_dir=data, name="ro-test") as mon:
        store = mon.store  # opened read-write
        app = make_app(mon, read_only=True)
        assert app.read_only  # the console refuses every action
        assert not mon.auto_fix  # and the engine fixes nothing
        assert mon.read_only is False  # the monitor is what it was made
        assert store.read_only is False and mon.store is store
        with pytest.raises(AttributeError):
            mon.read_only = True  # type: ignore[misc]


def test_a_read_only_monitor_opens_its_store_read_only(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    with OrchestratorHealthMonitor(data_dir=data, name="rw") as writer:
        writer.check()  # creates the database
    with OrchestratorHealthMonitor(data_dir=data, read_only=True, name="ro") as mon:
        assert mon.read_only and not mon.auto_fix
        assert mon.store.read_only
