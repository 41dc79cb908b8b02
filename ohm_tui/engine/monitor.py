"""``OrchestratorHealthMonitor``: the one API that the CLI, the console and
embedding orchestrators all call. (Contract stub: being implemented.)"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ohm_tui.engine.config import Config, load_config
from ohm_tui.engine.models import (
    ActionResult,
    AgentView,
    BugRow,
    CrashRow,
    Event,
    HealthReport,
    Snapshot,
)

ConfigSource = Config | Mapping[str, Any] | str | os.PathLike[str] | None


class UnknownBugError(KeyError):
    """Raised for a bug number the tracker does not hold."""


class UnknownAgentError(KeyError):
    """Raised for an agent key or PID the monitor does not know."""


class OrchestratorHealthMonitor:
    """Watches one orchestrator state directory. Safe to call from several threads."""

    def __init__(
        self,
        config: ConfigSource = None,
        *,
        data_dir: str | os.PathLike[str] | None = None,
        read_only: bool = False,
        name: str | None = None,
    ) -> None:
        self.config = load_config(config, data_dir=data_dir)
        self.read_only = read_only
        self.auto_fix = self.config.auto_fix and not read_only
        self.name = name or f"api:{os.getpid()}"

    # -- the seed's API ---------------------------------------------------
    def check_health(self) -> dict[str, Any]:
        """One check; the seed's result dict."""
        return self.check().to_dict()

    def check(self) -> HealthReport:
        raise NotImplementedError

    def auto_fix_issues(self, report: HealthReport | None = None) -> list[ActionResult]:
        raise NotImplementedError

    def report_bugs_if_any(self, report: HealthReport | None = None) -> list[int]:
        raise NotImplementedError

    # -- background mode ---------------------------------------------------
    def start(self) -> None:
        raise NotImplementedError

    def stop(self, timeout: float = 10.0) -> None:
        raise NotImplementedError

    def add_listener(self, callback: Callable[[Event], None]) -> None:
        """Call ``callback(event)`` (from an engine thread) for every new event."""
        raise NotImplementedError

    # -- for the faces -----------------------------------------------------
    def snapshot(self, *, crash_limit: int = 200, bug_limit: int = 200) -> Snapshot:
        raise NotImplementedError

    def crashes(
        self,
        since: float | None = None,
        *,
        agent_type: str | None = None,
        task_id: str | None = None,
        limit: int | None = None,
    ) -> list[CrashRow]:
        raise NotImplementedError

    def events(self, since: float | None = None, limit: int = 200) -> list[Event]:
        raise NotImplementedError

    def bugs(self, status: str = "open") -> list[BugRow]:
        raise NotImplementedError

    def bug(self, number: int | str) -> BugRow:
        raise NotImplementedError

    def agent_log_tail(self, agent_key: str, max_bytes: int = 65536) -> str:
        raise NotImplementedError

    # -- manual actions ----------------------------------------------------
    def spawn_agent(
        self,
        command: Sequence[str] | str,
        *,
        agent_type: str,
        task_id: str | None = None,
        cwd: str | os.PathLike[str] | None = None,
        env: Mapping[str, str] | None = None,
    ) -> AgentView:
        raise NotImplementedError

    def describe_respawn(self, agent: str | int) -> str:
        raise NotImplementedError

    def respawn(self, agent: str | int) -> ActionResult:
        raise NotImplementedError

    def stop_agent(self, agent: str | int) -> ActionResult:
        raise NotImplementedError

    def plan_zombie_cleanup(self) -> list[str]:
        raise NotImplementedError

    def clean_zombies(self, dry_run: bool = False) -> ActionResult:
        raise NotImplementedError

    def file_bug(
        self,
        title: str,
        priority: str,
        description: str = "",
        *,
        assigned_to: str | None = None,
        category: str = "manual",
        related: Mapping[str, Any] | None = None,
    ) -> BugRow:
        raise NotImplementedError

    def close_bug(self, number: int | str) -> BugRow:
        raise NotImplementedError

    def reopen_bug(self, number: int | str) -> BugRow:
        raise NotImplementedError

    def set_bug_priority(self, number: int | str, priority: str) -> BugRow:
        raise NotImplementedError

    def simulate_crash(
        self, agent_type: str, error: str = "ImportError", task_id: str | None = None
    ) -> AgentView:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> OrchestratorHealthMonitor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def default_data_dir() -> Path:
    return Path("data")
