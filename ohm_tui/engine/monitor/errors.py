"""What the monitor raises for a bug, an issue or an agent it does not know."""

from __future__ import annotations

from ohm_tui.engine.model import AgentRecord


class UnknownBugError(KeyError):
    """Raised for a bug number the tracker does not hold."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown bug"


class UnknownIssueError(KeyError):
    """Raised for an issue (or acknowledgement) that is not there now."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown issue"


class NotAProcessError(ValueError):
    """Raised for an action on a session (era 3): a thread of the orchestrator, which
    restarts its own, is never respawned or signalled. Refused before anything runs,
    so nothing is recorded (no failed respawn, no bug)."""


class UnknownAgentError(KeyError):
    """Raised for an agent key, PID or task the monitor does not know."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown agent"


def refuse_session(rec: AgentRecord, action: str) -> None:
    """Raise ``NotAProcessError`` for a session: before any plan, claim or signal."""
    if rec.source == "session":
        raise NotAProcessError(
            f"{action} refused: {rec.agent_type} on {rec.task_id or '?'} is a session, "
            "a thread of the orchestrator (it restarts its own): never respawned or signalled"
        )
