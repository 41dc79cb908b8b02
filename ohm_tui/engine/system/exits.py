"""Exit records: the one file ``runner.py`` writes when an agent ohm started ends.

One home for the path rule, reading (raw and as ``ExitInfo``), scanning the folder
and waiting for a record that is about to be written. ``runner.py`` writes them
(stdlib-only, so it repeats the path rule: ``<pid>-<int(started_at)>.json``).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ohm_tui.engine import timeutil
from ohm_tui.engine.model import ExitInfo

# An exit record and a state entry of the same run agree on the start this closely.
SAME_RUN_TOLERANCE = 5.0


def exit_record_path(exits_dir: str | os.PathLike[str], pid: int, started_at: float) -> Path:
    """Where ``runner.py`` writes the exit record of the agent ``pid`` started at ``started_at``."""
    return Path(exits_dir) / f"{pid}-{int(started_at)}.json"


def read_exit_record(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """An exit record, or ``None`` when it is missing, partial or not JSON."""
    try:
        with open(path, "rb") as f:
            data = json.loads(f.read())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def read_exit_info(path: Path) -> ExitInfo | None:
    """The runner's exit record as an ``ExitInfo``; ``None`` when partial or foreign."""
    data = read_exit_record(path)
    if data is None:
        return None
    try:
        return ExitInfo(
            pid=int(data["pid"]),
            started_at=timeutil.to_epoch(data.get("started_at")),
            ended_at=timeutil.to_epoch(data.get("ended_at")),
            exit_code=None if data.get("exit_code") is None else int(data["exit_code"]),
            path=path,
        )
    except (ValueError, KeyError, TypeError):
        return None  # e.g. a failed start: {"pid": null, "error": ...}


def record_files(exits_dir: str | os.PathLike[str], prefix: str = "") -> Iterator[str]:
    """Paths of the records in ``exits_dir`` (optionally of one pid: ``prefix="<pid>-"``)."""
    try:
        entries = list(os.scandir(exits_dir))
    except OSError:
        return
    for entry in entries:
        if entry.name.startswith(prefix) and entry.name.endswith(".json"):
            yield entry.path


def scan_exit_infos(exits_dir: str | os.PathLike[str]) -> dict[int, ExitInfo]:
    """Every readable exit record in ``exits_dir``, by pid."""
    out: dict[int, ExitInfo] = {}
    for path in record_files(exits_dir):
        info = read_exit_info(Path(path))
        if info is not None:
            out[info.pid] = info
    return out


def wait_exit_info(
    exits_dir: Path, pid: int, started_at: float | None, timeout: float
) -> ExitInfo | None:
    """The runner writes the exit record a moment after the agent dies: wait briefly."""
    deadline = time.monotonic() + timeout
    prefix = f"{pid}-"
    while True:
        for path in record_files(exits_dir, prefix):
            info = read_exit_info(Path(path))
            if info is not None and (
                started_at is None
                or info.started_at is None
                or abs(info.started_at - started_at) < SAME_RUN_TOLERANCE
            ):
                return info
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.0005)
