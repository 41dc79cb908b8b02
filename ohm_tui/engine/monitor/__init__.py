"""The monitor room: the only place with threads and the monitor's lock.

``OrchestratorHealthMonitor`` (the one API both faces and an embedding
orchestrator call) is a thin façade over: the event bus (``events``), the check
as a pipeline of steps (``check``, ``issues``, ``deaths``), the background loop
(``loop``), the read models (``views``) and the operator's actions (``operations``).
"""

from __future__ import annotations

from ohm_tui.engine.monitor.errors import (
    NotAProcessError,
    UnknownAgentError,
    UnknownBugError,
    UnknownIssueError,
)
from ohm_tui.engine.monitor.facade import OrchestratorHealthMonitor

__all__ = [
    "NotAProcessError",
    "OrchestratorHealthMonitor",
    "UnknownAgentError",
    "UnknownBugError",
    "UnknownIssueError",
]
