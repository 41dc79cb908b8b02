"""The seam between ohm and what an orchestrator owns: one small interface.

The room: ``base`` (this interface), ``registry`` (detection, merging, where
write-backs go), ``jsonfile`` (era 1), ``lifecycle`` (era 2+), ``sessions`` and
``calls`` (era 3), ``sqlite`` (read-only reads, one short write transaction).

A source is detected from what is on disk (never asked), says in words what it
reads (``ohm check`` prints it), yields agent records and maybe a heartbeat,
and knows how to write back the two things ohm ever changes in it: a new entry
after a respawn, and a stale entry moved to "ended".
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from enum import StrEnum

from ohm_tui.engine.config import Config
from ohm_tui.engine.model import AgentRecord, ExitInfo
from ohm_tui.engine.sources.statefile import LoopState


class SourceKind(StrEnum):
    """Names accepted by the ``sources = [...]`` config key."""

    AGENT_STATE = "agent_state"  # era 1: data/orchestrator/agent_state.json
    AGENT_LIFECYCLE = "agent_lifecycle"  # era 2+: table in orchestrator.db
    CLAUDE_INVOCATIONS = "claude_invocations"  # era 3: data/claude_invocations.db


class SourceWriteError(Exception):
    """A write-back into the orchestrator's own state failed; the text says why."""


@dataclass(slots=True)
class SourceRead:
    """What one source said in one check.

    ``error`` set means the source could not be read at all this time (the
    caller keeps its last good records and must not act on them); ``warnings``
    are parts it skipped. ``exits`` are end records keyed by agent key, for runs
    the source itself says ended (exit code, end time).
    """

    agents: list[AgentRecord] = field(default_factory=list)
    completed: list[AgentRecord] = field(default_factory=list)
    heartbeat: LoopState | None = None
    exits: dict[str, ExitInfo] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    error: str | None = None


class Source(ABC):
    """One place the orchestrator keeps agents (a file, a table)."""

    kind: SourceKind
    era: int

    def __init__(self, config: Config) -> None:
        self.config = config

    @classmethod
    @abstractmethod
    def detect(cls, config: Config) -> bool:
        """Is this source present in the state directory? Cheap; never writes."""

    @abstractmethod
    def describe(self) -> str:
        """In words, e.g. ``agent_lifecycle in orchestrator.db (era 2)``."""

    @abstractmethod
    def read(self, now: float) -> SourceRead:
        """Agents and heartbeat as the source says now. Never raises."""

    def owns(self, rec: AgentRecord) -> bool:
        """Did this source list ``rec`` (so write-backs for it go here)?"""
        return False

    def write_respawn(self, old: AgentRecord, new: AgentRecord, *, restarted: bool = False) -> None:
        """Record ``new`` where the orchestrator looks, and ``old`` as ended (``killed``
        when an operator restarted it: never a crash)."""
        raise SourceWriteError(f"{self.describe()} cannot record a respawn")

    def move_stale(self, stale: list[tuple[AgentRecord, str, int | None]], now: float) -> list[int]:
        """Mark listed-but-gone runs ``(record, status, exit_code)`` as ended;
        returns the PIDs moved. Never touches a run it cannot identify."""
        return []

    def close(self) -> None:
        """Release connections; the source may be read again afterwards."""
        return None
