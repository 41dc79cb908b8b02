"""ohm, the Orchestrator Health Monitor.

The public Python API lives here and imports no UI code, so an orchestrator can
embed the monitor cheaply::

    from ohm_tui import OrchestratorHealthMonitor
    monitor = OrchestratorHealthMonitor()
    status = monitor.check_health()

Names load lazily so that ``python -m ohm_tui.demo.agent`` and other small
entry points do not pay for the whole engine at start-up.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ohm_tui.engine.config import Config, ConfigError, load_config
    from ohm_tui.engine.monitor import OrchestratorHealthMonitor

__all__ = ["Config", "ConfigError", "OrchestratorHealthMonitor", "load_config"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name in ("Config", "ConfigError", "load_config"):
        from ohm_tui.engine import config

        return getattr(config, name)
    if name == "OrchestratorHealthMonitor":
        from ohm_tui.engine.monitor import OrchestratorHealthMonitor

        return OrchestratorHealthMonitor
    raise AttributeError(f"module 'ohm_tui' has no attribute {name!r}")
