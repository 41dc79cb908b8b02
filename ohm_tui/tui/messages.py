"""Messages that carry engine results from worker and engine threads to the UI thread.

``post_message`` is thread-safe, so threads hand results over with these and
never touch a widget themselves.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message

from ohm_tui.engine.model import ActionResult, AgentView, CrashRow, Event, Snapshot
from ohm_tui.tui.agents_model import AgentsFrame


@dataclass
class SnapshotReady(Message):
    """A freshly collected snapshot, to be rendered."""

    snapshot: Snapshot
    agents: AgentsFrame | None = None
    """The agents table built from it in the worker (``None``: build it when shown)."""

    def can_replace(self, message: Message) -> bool:
        # Only the newest frame matters: a queued older one is dropped.
        return isinstance(message, SnapshotReady)


@dataclass
class EngineEvent(Message):
    """The engine recorded an event (crash, respawn, ...): refresh now, not at the next tick."""

    event: Event


@dataclass
class ActionDone(Message):
    """A manual fix finished (successfully or not)."""

    result: ActionResult


@dataclass
class BugFormRequested(Message):
    """A detail screen asks for the bug form, prefilled from what it shows."""

    crash: CrashRow | None = None
    agent: AgentView | None = None


@dataclass
class RefreshRequested(Message):
    """A screen asks the App for a fresh snapshot now (back from a modal, a fix done)."""


@dataclass
class PauseRequested(Message):
    """A screen asks the App to pause (or resume) live refresh."""

    paused: bool
