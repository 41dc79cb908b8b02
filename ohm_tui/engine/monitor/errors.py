"""What the monitor raises for a bug, an issue or an agent it does not know."""

from __future__ import annotations


class UnknownBugError(KeyError):
    """Raised for a bug number the tracker does not hold."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown bug"


class UnknownIssueError(KeyError):
    """Raised for an issue (or acknowledgement) that is not there now."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown issue"


class UnknownAgentError(KeyError):
    """Raised for an agent key, PID or task the monitor does not know."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown agent"
