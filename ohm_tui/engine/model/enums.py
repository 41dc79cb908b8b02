"""Names the engine and both faces agree on: statuses, issue types, event kinds.

StrEnums so that they compare equal to the strings stored in SQLite and JSON.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

Status = Literal["healthy", "degraded", "critical"]
STATUS_ORDER: dict[str, int] = {"healthy": 0, "degraded": 1, "critical": 2}

# Where an agent record came from: agent_state.json (real or ohm format), ohm's own
# spawns, an agent_lifecycle row (era 2), or an in-process session row (era 3).
Source = Literal["real", "ohm", "ohm_spawned", "lifecycle", "session"]


class IssueType(StrEnum):
    """What a health check can find. A ``StrEnum``: members are the strings the
    seed's result dict and the database hold, so ``issue.type == "zombie"`` still works."""

    AGENT_CRASH = "agent_crash"
    AGENT_ERRORS = "agent_errors"
    ZOMBIE = "zombie"
    STALE_ENTRIES = "stale_entries"
    DUPLICATE_AGENTS = "duplicate_agents"
    MULTIPLE_ORCHESTRATORS = "multiple_orchestrators"
    STALLED_AGENT = "stalled_agent"
    BLOCKED_ON_OUTPUT = "blocked_on_output"  # asleep writing to a pipe nobody reads
    FLAPPING = "flapping"
    ORCHESTRATOR_FREEZE = "orchestrator_freeze"
    ORCHESTRATOR_GONE = "orchestrator_gone"
    HEARTBEAT_STALE = "heartbeat_stale"
    CRASH_STORM = "crash_storm"
    STATE_FILE_ERROR = "state_file_error"
    STORAGE_ERROR = "storage_error"
    COST_OVER_BUDGET = "cost_over_budget"  # main's session-cost check (era 3)
    RESPAWN_FAILED = "respawn_failed"  # a crash whose respawn could not start (h/respawn)


class EventKind(StrEnum):
    """Timeline event kinds (stored as their text in ``ohm_events.kind``)."""

    # Written *before* the signal, so that the death it causes is never taken for a
    # crash (by this monitor or any other watching the same data dir).
    STOPPED_BY_OPERATOR = "stopped_by_operator"
    RESTARTED_BY_OPERATOR = "restarted_by_operator"
    # The stop did not happen (permission denied, the process would not die):
    # cancels the marker above, so a later real crash of that run is a crash.
    STOP_FAILED = "stop_failed"
    STOPPED = "stopped"
    STATUS_CHANGED = "status_changed"  # once per change, whichever monitor saw it first
    CRASHED = "crashed"  # a run died with a failure (its crash row has the details)
    RESPAWNED = "respawned"
    RESPAWN_FAILED = "respawn_failed"
    GAVE_UP = "gave_up"  # no more automatic respawns for this task
    # Acknowledgements (ohm ack, key a).
    ACKNOWLEDGED = "acknowledged"  # an operator acknowledged an issue
    UNACKNOWLEDGED = "unacknowledged"  # an operator took an ack back
    ACK_LIFTED = "ack_lifted"  # the issue changed (worse, a new crash), expired, or went away
    # Alerts out: Alertmanager or a webhook could not be reached after its retries.
    NOTIFY_ERROR = "notify_error"


# What an operator did to a run on purpose: its death is not a crash.
OPERATOR_STOPS = (EventKind.STOPPED_BY_OPERATOR, EventKind.RESTARTED_BY_OPERATOR)


class Priority(StrEnum):
    """A bug's priority, the real tracker's words. Defined here once."""

    CRITICAL = "Critical"
    HIGH = "High"
    MEDIUM = "Medium"
    LOW = "Low"


PRIORITIES: tuple[str, ...] = tuple(p.value for p in Priority)  # most urgent first
PRIORITY_RANK: dict[str, int] = {p: i for i, p in enumerate(PRIORITIES)}  # Critical = 0
