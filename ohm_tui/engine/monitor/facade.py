"""``OrchestratorHealthMonitor``: the one API that the CLI, the console and an
embedding orchestrator all call.

A check *looks* (and records its own row plus each newly found crash once);
``auto_fix_issues`` and ``report_bugs_if_any`` act on what the last check found.
In background mode (``start()``) a pidfd watcher reports deaths the instant they
happen, so a crash is recorded and respawned in milliseconds; the periodic check
covers everything a death event cannot see (heartbeats, logs, stale entries).
"""

from __future__ import annotations

from ohm_tui.engine.model import task_key
from ohm_tui.engine.monitor.operations import Operations

__all__ = ["OrchestratorHealthMonitor", "task_key"]


class OrchestratorHealthMonitor(Operations):
    """Watches one orchestrator state directory. Safe to call from several threads.

    The façade: its parts are one module each (``base``: state and services; ``deaths``,
    ``issues``, ``watch`` and ``check``: the check; ``views``; ``loop``; ``operations``).
    """

    def close(self) -> None:
        self.stop()
        with self._lock:
            if self._store is not None:
                self._store.close()
                self._store = None
            self._sources.close()

    def __enter__(self) -> OrchestratorHealthMonitor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
