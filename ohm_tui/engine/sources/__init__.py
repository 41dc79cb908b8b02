"""What the orchestrator owns, one source per place it keeps agents.

- ``base``: the ``Source`` interface (detect, describe, read, write back).
- ``jsonfile``: era 1, ``agent_state.json``.
- ``lifecycle``: era 2+, ``agent_lifecycle`` and ``orchestrator_state``.
- ``invocations`` / ``sessions``: era 3, ``claude_invocations`` and session agents.
- ``registry``: detection, merging across sources, where write-backs go.
"""

from ohm_tui.engine.sources.base import Source, SourceKind, SourceRead, SourceWriteError
from ohm_tui.engine.sources.registry import SourceSet, looked_for

__all__ = ["Source", "SourceKind", "SourceRead", "SourceSet", "SourceWriteError", "looked_for"]
