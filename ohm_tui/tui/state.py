"""``ConsoleState``: what the console's screens draw, owned by the App and handed to them.

Screens read the monitor, the newest snapshot and the console's modes from here,
never from the concrete App: so no screen imports ``ohm_tui.tui.app`` (an
import-linter contract holds it) and there is no app <-> screen import cycle.
Only the App writes the state; a screen that wants it changed (refresh now,
pause) asks the App with a message (``RefreshRequested``, ``PauseRequested``).
"""

from __future__ import annotations

from dataclasses import dataclass

from ohm_tui.engine.model import Snapshot
from ohm_tui.engine.monitor import OrchestratorHealthMonitor


@dataclass
class ConsoleState:
    """The console's live state, one object shared by the App and the screens it builds."""

    monitor: OrchestratorHealthMonitor
    read_only: bool = False
    """Every action refused (and auto-fix off); fixed when the console is made."""
    demo: bool = False
    """The console watches a demo session (the header says so)."""
    demo_dir: str | None = None
    """A demo's state dir: a fresh temp path nobody typed (the header and ``?`` show it)."""
    demo_root: str | None = None
    """A demo's temporary root (``?`` shows it)."""
    snapshot: Snapshot | None = None
    """The newest snapshot rendered, ``None`` before the first one."""
    paused: bool = False
    """The operator paused live refresh (``p``)."""
    engine_error: str | None = None
    """The last engine failure (a snapshot or the start failed), shown in the header."""
