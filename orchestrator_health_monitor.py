"""Compatibility name from the design card: ``from orchestrator_health_monitor import ...``."""

from ohm_tui import Config, OrchestratorHealthMonitor, load_config

__all__ = ["Config", "OrchestratorHealthMonitor", "load_config"]
