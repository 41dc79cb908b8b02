"""What every command needs before it calls the engine: a validated config, an
existing data directory and a monitor; plus the CLI's error and exit-code rules.

Exit codes (all commands but ``check``):
  0 success; 1 an operation failed (a respawn did not start, the disk is full);
  2 bad input (unknown option, bad duration, unknown bug or agent, a config typo,
  a data directory that does not exist), as argparse does.
``check`` follows the monitoring-plugin convention instead: 0 healthy,
1 degraded, 2 critical, 3 unknown (the check could not run, whatever the cause).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ohm_tui.engine.config import Config, load_config
from ohm_tui.engine.monitor import OrchestratorHealthMonitor
from ohm_tui.engine.sources import registry

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_UNKNOWN = 3


class CliError(Exception):
    """A one-line error for the user, with the exit code it deserves."""

    def __init__(self, message: str, code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.code = code


def build_config(args: argparse.Namespace, overrides: Mapping[str, Any] | None = None) -> Config:
    """The config the command line asks for: ``--config`` file, then ``--data-dir``."""
    return load_config(
        getattr(args, "config", None) or None,
        data_dir=getattr(args, "data_dir", None) or None,
        overrides=overrides,
    )


def require_data_dir(cfg: Config) -> None:
    """Refuse to watch a directory that is not there: a typo would show "healthy"."""
    path = Path(cfg.data_dir).expanduser()
    if not path.exists():
        raise CliError(
            f"data directory {os.fspath(path)!r} does not exist "
            "(point --data-dir at the orchestrator's state directory, or try 'ohm demo')"
        )
    if not path.is_dir():
        raise CliError(f"data directory {os.fspath(path)!r} is not a directory")


def require_sources(cfg: Config, code: int = EXIT_USAGE) -> None:
    """Refuse a directory with none of the orchestrator's files, before anything is
    written there (no database is created in the wrong place)."""
    if not registry.any_present(cfg):
        raise CliError(
            f"no orchestrator state found in {os.fspath(Path(cfg.data_dir).expanduser())!r}: "
            f"looked for {registry.looked_for(cfg)}",
            code,
        )


def open_monitor(
    args: argparse.Namespace,
    *,
    overrides: Mapping[str, Any] | None = None,
    read_only: bool = False,
    sources_or_exit: int | None = None,
) -> OrchestratorHealthMonitor:
    """A monitor on the data directory the command line names (which must exist).
    ``sources_or_exit``: also refuse, with that exit code, a directory with no source."""
    cfg = build_config(args, overrides)
    require_data_dir(cfg)
    if sources_or_exit is not None:
        require_sources(cfg, sources_or_exit)
    return OrchestratorHealthMonitor(cfg, read_only=read_only, name=f"cli:{os.getpid()}")


def open_reader(args: argparse.Namespace) -> OrchestratorHealthMonitor:
    """A monitor for the listings, which must not change history: an existing database
    is opened read-only, so SQLite itself refuses any write. (A missing one is
    created empty, as every command does; a directory with neither it nor any of
    the orchestrator's files is refused, untouched.)"""
    cfg = build_config(args)
    require_data_dir(cfg)
    read_only = Path(cfg.database_path).exists()
    if not read_only:
        require_sources(cfg)
    return OrchestratorHealthMonitor(cfg, read_only=read_only, name=f"cli:{os.getpid()}")


def agent_ref(text: str) -> str | int:
    """An agent as typed: a PID is an ``int``; a key (``pid@start``) or task id stays text."""
    stripped = text.strip()
    return int(stripped) if stripped.isdigit() else stripped
