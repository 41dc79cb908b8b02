"""ohm, the Orchestrator Health Monitor.

The public Python API lives here and imports no UI code, so an orchestrator can
embed the monitor cheaply::

    from ohm_tui import OrchestratorHealthMonitor
    monitor = OrchestratorHealthMonitor()
    status = monitor.check_health()
"""

from ohm_tui.engine.config import Config, ConfigError, load_config
from ohm_tui.engine.monitor import OrchestratorHealthMonitor

__all__ = ["Config", "ConfigError", "OrchestratorHealthMonitor", "load_config"]
__version__ = "0.1.0"
