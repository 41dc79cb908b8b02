"""The team daemon's per-agent heartbeat files: ``data/agent_status/<agent>_status.json``.

A second daemon of the real project writes one file per agent with keys
``agent_type, state (idle|working|error|stopped|crashed), current_task,
last_heartbeat (naive local ISO), next_check, health, pid, metrics, error`` and
``stopped_at`` once stopped. It restarts its own agents (3 times, 60·2^n s
backoff), so ohm watches and reports them and never respawns one:

- ``crashed``, or ``error`` with error text: a crash (recorded, not respawned);
- ``last_heartbeat`` older than 300 s, while not stopped: a stale agent;
- ``stopped``: an agent that was stopped, not a crash.

Reading only; the monitor records what this finds.
"""

from __future__ import annotations

import json
import os
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ohm_tui.engine import timeutil
from ohm_tui.engine.model import CrashInfo, Issue
from ohm_tui.engine.sources import logparse, logtail

STATUS_DIR = "agent_status"  # relative to the data directory
SUFFIX = "_status.json"
STALE_AFTER = 300.0  # the daemon's own staleness limit
MAX_BYTES = 1 << 20
SOURCE = "agent_status"


@dataclass(slots=True)
class TeamAgentStatus:
    """One heartbeat file as read."""

    path: Path
    agent_type: str
    state: str
    current_task: str | None
    last_heartbeat: float | None  # UTC epoch
    pid: int | None
    error: str | None
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def crashed(self) -> bool:
        return self.state == "crashed" or (self.state == "error" and bool(self.error))

    @property
    def key(self) -> str:
        """One crashed run: its process and its error (a heartbeat may still move; a
        restart by the daemon is a new process)."""
        tag = zlib.crc32(f"{self.state}:{self.error or ''}".encode())
        return f"{self.pid or 0}@{SOURCE}:{self.agent_type}:{tag:08x}"


def _text(value: object) -> str | None:
    if value is None:
        return None
    s = str(value).strip()
    return s or None


def read_status_file(path: Path) -> TeamAgentStatus | None:
    """One file; ``None`` when it is unreadable or not an object (it is rewritten
    every heartbeat, so a torn read is simply read again next check)."""
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_BYTES + 1)
        if len(data) > MAX_BYTES:
            return None
        doc = json.loads(data.decode("utf-8", "replace"))
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict):
        return None
    name = path.name[: -len(SUFFIX)] if path.name.endswith(SUFFIX) else path.stem
    pid = doc.get("pid")
    return TeamAgentStatus(
        path=path,
        agent_type=_text(doc.get("agent_type")) or name,
        state=(_text(doc.get("state")) or "unknown").lower(),
        current_task=_text(doc.get("current_task")),
        last_heartbeat=timeutil.to_epoch(doc.get("last_heartbeat")),
        pid=pid if isinstance(pid, int) and not isinstance(pid, bool) and pid > 0 else None,
        error=_text(doc.get("error")),
        raw=doc,
    )


def read_statuses(folder: Path) -> list[TeamAgentStatus]:
    """Every ``*_status.json`` in ``folder`` (``<data_dir>/agent_status``); none: ``[]``."""
    try:
        names = sorted(e.name for e in os.scandir(folder) if e.name.endswith(SUFFIX))
    except OSError:
        return []
    out = []
    for name in names:
        st = read_status_file(folder / name)
        if st is not None:
            out.append(st)
    return out


def crash_info(st: TeamAgentStatus) -> CrashInfo:
    """The error text read like a log tail: a traceback in it gives type and frames."""
    text = logtail.sanitize(st.error or f"state {st.state}")
    info = logparse.parse_crash(text)
    if not info.error_type:
        head, sep, rest = text.partition(":")
        simple = sep and head.strip().isidentifier()
        info.error_type = head.strip() if simple else "AgentError"
        info.error_message = rest.strip() if simple else text.strip()
    info.error_message = (info.error_message or "")[:2000]
    info.fingerprint = info.fingerprint or logparse.fingerprint(
        info.error_type, [], f"{st.agent_type}:{info.error_message}"
    )
    return info


def status_issues(statuses: list[TeamAgentStatus], now: float) -> list[Issue]:
    """Crashes and stale heartbeats; stopped agents are neither."""
    issues: list[Issue] = []
    for st in statuses:
        details: dict[str, Any] = {"source": SOURCE, "file": str(st.path), "state": st.state}
        if st.crashed:
            info = crash_info(st)
            issues.append(
                Issue(
                    type="agent_crash",
                    severity="degraded",
                    error=f"{info.error_type}: {info.error_message}".rstrip(": ")[:500],
                    agent_pid=st.pid,
                    agent_type=st.agent_type,
                    task_id=st.current_task,
                    agent_key=st.key,
                    action_taken="not respawned: the team daemon restarts its own agents",
                    details={**details, "reason": f"state {st.state} in {st.path.name}"},
                )
            )
            continue
        if st.state == "stopped" or st.last_heartbeat is None:
            continue
        age = now - st.last_heartbeat
        if age > STALE_AFTER:
            issues.append(
                Issue(
                    type="heartbeat_stale",
                    severity="degraded",
                    error=f"{st.agent_type} heartbeat is {int(age)} s old "
                    f"(stale after {int(STALE_AFTER)} s; state {st.state})",
                    agent_pid=st.pid,
                    agent_type=st.agent_type,
                    task_id=st.current_task,
                    details={**details, "heartbeat_age": age},
                )
            )
    return issues
