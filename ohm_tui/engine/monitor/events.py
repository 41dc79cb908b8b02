"""The event bus: record a timeline event, hand every new event to listeners once.

Events are rows in ``ohm_events`` (any process may write them); the bus keeps a
cursor (the newest id handed out) and delivers what lies past it. Reading past
the cursor, advancing it and calling listeners happen under the bus's own lock,
so two threads recording at once never deliver an event twice or out of order.

Lock order: the monitor's lock, then the bus's (never the other way round: the bus
never opens the store under its lock). Listeners run on engine threads under the
bus lock and must only hand the event over (never call the monitor).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from typing import Any

from ohm_tui.engine.model import Event
from ohm_tui.engine.store import Store, StoreError

log = logging.getLogger("ohm.monitor")

Listener = Callable[[Event], None]


class EventBus:
    """Listeners, and the cursor of the events already handed to them."""

    def __init__(self, store: Callable[[], Store], opened: Callable[[], Store | None]) -> None:
        self._store = store  # opens the database (raises StoreError)
        self._opened = opened  # the database if already open, else None (never opens)
        self._lock = threading.RLock()  # re-entrant: a listener may record an event
        self._listeners: list[Listener] = []
        self._cursor = 0

    def start_after_newest(self, store: Store) -> None:
        """Listeners hear what happens from now on, not the history."""
        with self._lock:
            ids = [e.event_id for e in store.list_events(limit=1)]
            self._cursor = ids[0] if ids else 0

    def add_listener(self, callback: Listener) -> None:
        with self._lock:
            first = not self._listeners
        store: Store | None = None
        if first:  # opening takes the monitor's lock: never while holding ours
            with contextlib.suppress(StoreError):
                store = self._store()
        with self._lock:
            if not self._listeners and store is not None:
                self.start_after_newest(store)
            self._listeners.append(callback)

    def remove_listener(self, callback: Listener) -> None:
        with self._lock, contextlib.suppress(ValueError):
            self._listeners.remove(callback)

    def emit(self, kind: str, message: str, **fields: Any) -> Event | None:
        """Record an event and deliver it; storage trouble is logged, not raised."""
        try:
            ev = self._store().add_event(kind, message, **fields)
        except StoreError as exc:
            log.warning("could not record event %s: %s", kind, exc)
            return None
        self.deliver()
        return ev

    def deliver(self) -> None:
        """Hand events written since the last call to listeners (any process wrote them)."""
        with self._lock:
            store = self._opened()
            if not self._listeners or store is None:
                return
            try:
                new = store.list_events(after_id=self._cursor, limit=500)
            except StoreError:
                return
            for ev in sorted(new, key=lambda e: e.event_id):
                if ev.event_id <= self._cursor:
                    continue
                self._cursor = ev.event_id
                for cb in list(self._listeners):
                    try:
                        cb(ev)
                    except Exception:  # a face's bug must not stop the engine
                        log.exception("event listener failed")
