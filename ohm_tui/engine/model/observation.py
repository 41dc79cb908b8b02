"""What one check saw of one agent run, and what the runner recorded when it ended.

Plain records: sources build them, detection reads them, actions act on them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ohm_tui.engine.model.lifecycle import Liveness
from ohm_tui.engine.model.process import RawProc
from ohm_tui.engine.model.records import AgentRecord, CrashInfo

__all__ = ["ExitInfo", "Liveness", "Observation"]


@dataclass(slots=True)
class Observation:
    """One agent run as this check saw it."""

    record: AgentRecord
    liveness: Liveness
    raw: RawProc | None = None
    cpu_percent: float | None = None
    exit_code: int | None = None
    died_at: float | None = None
    crash: CrashInfo | None = None
    is_crash: bool = False
    recent: bool = False  # died recently enough to act on
    stale_entry: bool = False  # its source still lists it as running, but it is not
    log_mtime: float | None = None
    reason: str = ""
    zombie: bool = False  # dead, not yet reaped by its parent (``raw`` is the zombie)


@dataclass(slots=True)
class ExitInfo:
    """What the runner wrapper recorded when an agent ohm started ended."""

    pid: int
    started_at: float | None
    ended_at: float | None
    exit_code: int | None
    path: Path | None = None
