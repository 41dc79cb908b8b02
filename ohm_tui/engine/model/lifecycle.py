"""An agent run's lifecycle: ONE enum, the allowed transitions, the event each is told by,
and every mapping to and from the other vocabularies (once, here).

- ``Lifecycle`` is the run's state. ``AgentStatus`` (what both faces show) IS this enum:
  ``shown_status`` derives it from what a check saw.
- ``Liveness`` is what the process table says of a run (an input to ``shown_status``).
- ``FixState`` is a crash row's handling state (``agent_crashes.fix_state``; stored values
  unchanged); ``FIX_STATE_OF`` says which one a crash row gets for the run's next state.
- ``RespawnState`` (the per-task ledger) maps through ``task_phase``.

``advance`` is the pure check of one move (``IllegalTransition`` if not allowed);
``EngineContext.move`` is the one function that moves a run: it checks the move through
``advance`` and emits its event.
"""

from __future__ import annotations

from enum import StrEnum

from ohm_tui.engine.model.enums import EventKind


class Lifecycle(StrEnum):
    """An agent run's state. Values are the words stored and shown (``--json`` too)."""

    RUNNING = "running"
    STALLED = "stalled"  # alive, but no sign of progress
    ZOMBIE = "zombie"  # dead, not yet reaped by its parent
    CRASHED = "crashed"  # died with a failure: a crash row, a respawn to decide
    RESPAWNING = "respawning"  # crashed, its respawn waits out its backoff
    RESPAWN_FAILED = "respawn_failed"  # a respawn could not start: nothing runs the task
    GIVEN_UP = "given_up"  # no more automatic respawns (flapping, too many attempts)
    STOPPING = "stopping"  # an operator's stop is recorded, the signal is on its way
    RESTARTING = "restarting"  # the same, for a restart: a new run follows
    COMPLETED = "completed"  # ended cleanly (or stopped by an operator)
    KILLED = "killed"  # stopped on purpose by the orchestrator
    STALE = "stale"  # listed as running by its source, but gone


# What people see is the lifecycle itself (one vocabulary, not two).
AgentStatus = Lifecycle

_L = Lifecycle
# Runs whose process is there: only these have an uptime, a CPU, a stop.
LIVE: frozenset[Lifecycle] = frozenset({_L.RUNNING, _L.STALLED, _L.ZOMBIE})
# Runs that ended and are not being handled: respawned by hand only.
ENDED: frozenset[Lifecycle] = frozenset(
    {_L.CRASHED, _L.RESPAWN_FAILED, _L.GIVEN_UP, _L.COMPLETED, _L.KILLED, _L.STALE}
)


class Liveness(StrEnum):
    """What the process table (and exit records) say of a run at one check."""

    ALIVE = "alive"
    ZOMBIE = "zombie"
    DEAD = "dead"
    ENDED_OK = "ended_ok"
    NOT_RUNNING = "not_running"  # its source no longer lists it as running


class FixState(StrEnum):
    """A crash row's handling state (``agent_crashes.fix_state``: these stored words)."""

    PENDING = "pending"  # a respawn to decide (now, or after its backoff)
    CLAIMED = "claimed"  # a fixer is deciding it
    DONE = "done"  # decided: respawned, given up, or failed to respawn
    SKIPPED = "skipped"  # not for ohm to act on (not recent, not respawnable)


# The crash row's handling state for the state its run moves to.
FIX_STATE_OF: dict[Lifecycle, FixState] = {
    _L.CRASHED: FixState.PENDING,
    _L.RESPAWNING: FixState.PENDING,
    _L.RUNNING: FixState.DONE,
    _L.GIVEN_UP: FixState.DONE,
    _L.RESPAWN_FAILED: FixState.DONE,
}


class IllegalTransition(ValueError):
    """A move the lifecycle does not allow (a bug in the caller, never bad input)."""


# (from, to) -> the event that records the move, or None when the move is recorded
# elsewhere (a crash row, the source's own status). Absent pairs are not allowed.
TRANSITIONS: dict[tuple[Lifecycle, Lifecycle], EventKind | None] = {
    # Seen by a check. A crash is an event (and a crash row); the rest are told by the
    # source's own status and the agents table.
    **{(f, t): None for f in (_L.RUNNING, _L.STALLED) for t in (_L.RUNNING, _L.STALLED) if f != t},
    **{(f, _L.ZOMBIE): None for f in (_L.RUNNING, _L.STALLED)},
    **{(f, _L.CRASHED): EventKind.CRASHED for f in LIVE},
    **{(f, t): None for f in LIVE for t in (_L.COMPLETED, _L.KILLED, _L.STALE)},
    (_L.CRASHED, _L.RESPAWNING): None,  # the policy says wait (the crash row says how long)
    # Decided by ohm: each is a timeline event.
    **{
        (f, t): kind
        for f in (_L.RUNNING, _L.STALLED, _L.ZOMBIE)
        for t, kind in (
            (_L.STOPPING, EventKind.STOPPED_BY_OPERATOR),
            (_L.RESTARTING, EventKind.RESTARTED_BY_OPERATOR),
        )
    },
    (_L.STOPPING, _L.KILLED): EventKind.STOPPED,
    (_L.RESTARTING, _L.KILLED): None,  # the restart's respawn tells it
    (_L.STOPPING, _L.RUNNING): EventKind.STOP_FAILED,  # the stop did not happen
    (_L.RESTARTING, _L.RUNNING): EventKind.STOP_FAILED,
    (_L.CRASHED, _L.GIVEN_UP): EventKind.GAVE_UP,
    (_L.RESPAWNING, _L.GIVEN_UP): EventKind.GAVE_UP,
    # A respawn (automatic, by hand, or a restart's second half) starts a new run.
    **{(f, _L.RUNNING): EventKind.RESPAWNED for f in (*ENDED, _L.RESPAWNING)},
    **{(f, _L.RESPAWN_FAILED): EventKind.RESPAWN_FAILED for f in (*ENDED, _L.RESPAWNING)},
}


def advance(current: Lifecycle, target: Lifecycle) -> EventKind | None:
    """The event that records ``current -> target`` (``None``: recorded elsewhere);
    ``IllegalTransition`` if the move is not allowed."""
    if (current, target) not in TRANSITIONS:
        raise IllegalTransition(f"an agent run cannot go from {current} to {target}")
    return TRANSITIONS[(current, target)]


def ended_state(status: str | None, exit_code: int | None) -> Lifecycle:
    """The state of a run that is not running, from its source's status and exit code."""
    if status == "killed":
        return _L.KILLED
    return _L.COMPLETED if exit_code in (0, None) else _L.CRASHED


def task_phase(given_up: bool, next_respawn_at: float | None) -> Lifecycle | None:
    """Where a task's respawn ledger (``RespawnState``) puts its crashed run, if anywhere."""
    if given_up:
        return _L.GIVEN_UP
    return _L.RESPAWNING if next_respawn_at else None


def shown_status(
    liveness: Liveness | str,
    *,
    record_status: str | None,
    exit_code: int | None,
    is_crash: bool,
    stalled: bool = False,
    given_up: bool = False,
    next_respawn_at: float | None = None,
    respawn_failed: bool = False,
    operator_stopped: bool = False,
) -> Lifecycle:
    """The state both faces show for a run, from what one check saw of it (the one mapping
    from liveness, the source's status and the respawn ledger)."""
    alive = liveness == Liveness.ALIVE
    if respawn_failed and not alive:
        return _L.RESPAWN_FAILED
    if operator_stopped and not alive:
        return _L.COMPLETED  # its reason says "stopped by operator"
    if alive:
        return _L.STALLED if stalled else _L.RUNNING
    if liveness == Liveness.ZOMBIE:
        return _L.ZOMBIE
    if liveness in (Liveness.ENDED_OK, Liveness.NOT_RUNNING):
        return ended_state(record_status if liveness == Liveness.NOT_RUNNING else None, exit_code)
    if is_crash:
        return task_phase(given_up, next_respawn_at) or _L.CRASHED
    return _L.STALE
