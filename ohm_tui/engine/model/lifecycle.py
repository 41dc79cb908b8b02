"""An agent run's lifecycle as the actions move it: one enum, the allowed transitions,
and the event each transition is told by.

``advance`` is the only way to move: actions call it through ``ActionBase.move``,
which checks the transition and records its event. What people see (``AgentStatus``)
is derived from the check's observations and this history.
"""

from __future__ import annotations

from enum import StrEnum

from ohm_tui.engine.model.enums import EventKind


class Lifecycle(StrEnum):
    RUNNING = "running"
    CRASHED = "crashed"  # died with a failure: a crash row, a respawn to decide
    RESPAWN_FAILED = "respawn_failed"  # a respawn could not start: nothing runs the task
    GIVEN_UP = "given_up"  # no more automatic respawns (flapping, too many attempts)
    STOPPING = "stopping"  # an operator's stop is recorded, the signal is on its way
    RESTARTING = "restarting"  # the same, for a restart: a new run follows
    ENDED = "ended"  # ended otherwise (completed, killed, stale): respawned by hand only


class IllegalTransition(ValueError):
    """A move the lifecycle does not allow (a bug in the caller, never bad input)."""


_L = Lifecycle
# (from, to) -> the event that records the move. Absent pairs are not allowed.
TRANSITIONS: dict[tuple[Lifecycle, Lifecycle], EventKind] = {
    (_L.RUNNING, _L.STOPPING): EventKind.STOPPED_BY_OPERATOR,
    (_L.RUNNING, _L.RESTARTING): EventKind.RESTARTED_BY_OPERATOR,
    (_L.CRASHED, _L.GIVEN_UP): EventKind.GAVE_UP,
    **{
        (f, _L.RUNNING): EventKind.RESPAWNED
        for f in (_L.CRASHED, _L.RESPAWN_FAILED, _L.GIVEN_UP, _L.RESTARTING, _L.ENDED)
    },
    **{
        (f, _L.RESPAWN_FAILED): EventKind.RESPAWN_FAILED
        for f in (_L.CRASHED, _L.RESPAWN_FAILED, _L.GIVEN_UP, _L.RESTARTING, _L.ENDED)
    },
}


def advance(current: Lifecycle, target: Lifecycle) -> EventKind:
    """The event that records ``current -> target``; ``IllegalTransition`` if not allowed."""
    kind = TRANSITIONS.get((current, target))
    if kind is None:
        raise IllegalTransition(f"an agent run cannot go from {current} to {target}")
    return kind
