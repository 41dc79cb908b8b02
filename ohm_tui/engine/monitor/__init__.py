"""The monitor room: the only place with threads and the monitor's lock.

``OrchestratorHealthMonitor`` (the one API both faces and an embedding
orchestrator call) is a thin façade that owns four parts and delegates to them: the
check engine (``checkengine``: the check as a pipeline of steps in ``check``,
``issues``, ``deaths``, ``watch`` over ``base``, with the event bus of ``events``),
the read models (``views``), the background loop (``loop``, sharing ``loopstate``
with the check) and the operator's actions (``operations``). No part holds the façade.
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
