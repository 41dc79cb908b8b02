"""What an action or a bug rule is given instead of the monitor.

``EngineContext`` is the engine's shared services (config, store, event sink,
notifier, sources, spawner); ``CheckState`` is what the last check saw. The monitor owns
both and fills ``CheckState`` on every check; actions and bug rules read them and
never reach into the monitor (no back-references, no private attributes).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from ohm_tui.engine.config import Config
from ohm_tui.engine.model import (
    Event,
    EventKind,
    IllegalTransition,
    Lifecycle,
    Observation,
    advance,
)
from ohm_tui.engine.notify import Notifier
from ohm_tui.engine.sources.registry import SourceSet
from ohm_tui.engine.sources.statefile import AgentStateView
from ohm_tui.engine.store import Store
from ohm_tui.engine.system.spawner import Spawner

log = logging.getLogger("ohm.lifecycle")


class EventSink(Protocol):
    """Records a timeline event and tells listeners; ``None`` when it could not be stored."""

    def __call__(self, kind: str, message: str, **fields: Any) -> Event | None: ...


@dataclass(slots=True)
class EngineContext:
    """The services an action needs. ``store`` opens the database on first use."""

    config: Config
    notifier: Notifier
    sources: SourceSet
    emit: EventSink
    open_store: Callable[[], Store]
    holder: str  # this monitor's claimer name: ``name:pid:create_time``
    lock: threading.RLock  # the check's lock: taken around events that race a check
    spawner: Spawner  # the monitor's: starts agents, owns their runners and the warm spare
    process_cwd: Callable[[str], str | None] = lambda _key: None
    orchestrator_cwd: Callable[[], str | None] = lambda: None

    @property
    def store(self) -> Store:
        return self.open_store()

    def move(
        self, current: Lifecycle, target: Lifecycle, message: str, **fields: Any
    ) -> Event | None:
        """The one way an agent run's lifecycle moves: checked by ``advance``, then told
        by its event. ``None`` when the move has no event of its own, could not be
        stored, or was refused.

        An illegal move is refused and logged as an error, never raised: the state it
        starts from is ohm's own reading of a live system, so a wrong one is a bug of
        ours that must not abort a check or a respawn pass half-way (other crashes still
        to handle), and nothing is recorded that did not happen. A refused marker (a
        stop) is not acted on, exactly as one that could not be stored.
        """
        allowed, kind = self.check_move(current, target, message, **fields)
        if not allowed or kind is None:
            return None
        return self.emit(kind, message, **fields)

    def check_move(
        self, current: Lifecycle, target: Lifecycle, message: str, **fields: Any
    ) -> tuple[bool, EventKind | None]:
        """``move`` without the telling: (allowed, the event that tells it). For a caller
        that writes the event itself in the same transaction as what it records (a
        storm's crash rows and their ``crashed`` events commit together)."""
        who = fields.get("agent_key") or fields.get("agent_pid") or "?"
        try:
            kind = advance(current, target)
        except IllegalTransition as exc:
            log.error("refused for %s: %s (%s)", who, exc, message)
            return False, None
        log.debug("%s: %s -> %s", who, current, target)
        return True, kind


@dataclass(slots=True)
class CheckState:
    """What the last check saw, as the actions read it."""

    observations: dict[str, Observation] = field(default_factory=dict)
    state_ok: bool = False  # agent_state.json was read cleanly (never write a file we cannot read)
    last_view: AgentStateView | None = None
