"""The check engine: the inner chain (``base`` → ``deaths`` → ``issues`` → ``watch`` →
``check``) as one object, and the narrow interface the outer parts use.

The read models (``views``), the background loop (``loop``) and the operator's actions
(``operations``) each hold this object and call only what is defined (or named) here,
never the chain's private state; the façade owns all four.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Mapping
from typing import Any

from ohm_tui.engine.model import (
    ActionResult,
    AgentRecord,
    HealthReport,
    Observation,
)
from ohm_tui.engine.monitor.base import FIXER_LEASE
from ohm_tui.engine.monitor.check import Check
from ohm_tui.engine.monitor.events import EventBus
from ohm_tui.engine.store import StoreError


class CheckEngine(Check):
    """The check, its memory and its services; what the outer parts may read and call."""

    @property
    def lock(self) -> threading.RLock:
        """The monitor's lock (re-entrant): the check, fixes and reads take it."""
        return self._lock

    @property
    def last_report(self) -> HealthReport | None:
        """The last check's report, read without the lock (one reference, swapped whole):
        for senders that must never wait on, or slow, the engine."""
        return self._last_report

    @property
    def bus(self) -> EventBus:
        """The event bus: listeners, and events written since handed over once."""
        return self._events

    @property
    def observations(self) -> dict[str, Observation]:
        """Each listed run as the last check (or a death since) saw it, by agent key."""
        return self._observations

    @property
    def failed_respawns(self) -> Mapping[str, Mapping[str, Any]]:
        """Tasks whose respawn could not start (old agent key -> row), as of the last check."""
        return self._failed_respawns

    def operator_stopped(self, key: str) -> bool:
        """Known (from the timeline) to have been stopped by an operator."""
        return bool(self._operator_stopped.get(key))

    @property
    def store_error(self) -> str | None:
        """Why the database could not be opened the last time it was tried."""
        return self._store_error

    @property
    def holds_fixer_lease(self) -> bool:
        """As of the last ``is_fixer()``: this monitor is the one that fixes."""
        return self._is_fixer

    def require_writable(self, action: str) -> None:
        """Raise ``PermissionError`` in read-only mode."""
        self._require_writable(action)

    def deliver_events(self) -> None:
        """Hand events written since the last call to listeners."""
        self._emit_new_events()

    def adopt(self, rec: AgentRecord) -> Observation:
        """Observe and watch an agent ohm has just started."""
        return self._adopt(rec)

    def adopt_spawned(self, agent_key: str) -> bool:
        """Watch an agent ohm just respawned at once (False if not in ``ohm_agents``)."""
        return self._adopt_spawned(agent_key)

    def adopt_respawns(self, results: list[ActionResult]) -> None:
        """Watch the runs ohm just started, so their deaths take the fast path too."""
        self._adopt_respawns(results)

    def arm_watches(self) -> None:
        """Watch every run seen alive that is not watched yet (background mode)."""
        self._arm_watches()

    def release_fixer_lease(self) -> None:
        """Give the fixer lease back (on stop), if this monitor holds it."""
        if self._store is not None and self._is_fixer:
            with contextlib.suppress(StoreError):
                self._store.release_lease(FIXER_LEASE, self._holder)
            self._is_fixer = False

    def close(self) -> None:
        """Close the database and the sources (the loop is stopped first)."""
        with self._lock:
            if self._store is not None:
                self._store.close()
                self._store = None
            self._sources.close()
