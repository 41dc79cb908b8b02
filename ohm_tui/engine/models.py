"""Plain data shared by the engine, the CLI and the console.

Everything here is a frozen-ish dataclass of builtins so that a snapshot can be
handed from the engine thread to the UI thread without locks, and turned into
JSON for ``--json`` output without custom encoders.

All times are UTC epoch seconds (``float``). Nothing here formats times for
people: faces do that with ``humanize``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Status = Literal["healthy", "degraded", "critical"]
STATUS_ORDER: dict[str, int] = {"healthy": 0, "degraded": 1, "critical": 2}

# Where an agent record came from: agent_state.json (real or ohm format), ohm's own
# spawns, an agent_lifecycle row (era 2), or an in-process session row (era 3).
Source = Literal["real", "ohm", "ohm_spawned", "lifecycle", "session"]

# Agent statuses shown to people (console column, CLI).
AgentStatus = Literal[
    "running",
    "crashed",
    "respawning",
    "given_up",
    "zombie",
    "stalled",
    "completed",
    "stale",
]

IssueType = Literal[
    "agent_crash",
    "agent_errors",
    "zombie",
    "stale_entries",
    "duplicate_agents",
    "multiple_orchestrators",
    "stalled_agent",
    "flapping",
    "orchestrator_freeze",
    "orchestrator_gone",
    "heartbeat_stale",
    "crash_storm",
    "state_file_error",
    "storage_error",
]


@dataclass(slots=True)
class AgentRecord:
    """One agent as a state source describes it (before looking at processes).

    ``key`` identifies one *run* of an agent: ``"<pid>@<started_at as int>"``.
    A PID alone is not an identity: PIDs are reused.
    """

    key: str
    pid: int
    agent_type: str
    task_id: str | None
    source: Source
    command: list[str]  # argv; real-format strings are split with shlex
    command_text: str  # the command as the source wrote it (shown to people)
    cwd: str | None
    log_file: str | None
    started_at: float | None  # UTC epoch seconds; None when the source has none
    status: str  # as the source says: running / completed / killed / failed ...
    exit_code: int | None = None
    create_time: float | None = None  # psutil create time when the source knows it
    worktree_path: str | None = None
    raw: dict[str, Any] = field(default_factory=dict)
    # The run's own output when its source keeps it (agent_lifecycle's
    # stdout_output / stderr_output), bounded: parsed like a log tail.
    output: str | None = None
    session: SessionHealth | None = None  # era 3 sessions only

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(slots=True)
class SessionHealth:
    """An era-3 session's health, from its ``claude`` invocations (times UTC epoch)."""

    invocations: int = 0
    open_since: float | None = None  # the oldest call still without completed_at
    stuck_for: float | None = None  # seconds past the stuck threshold, when stuck
    failure_status: str | None = None  # error | timeout, of the newest failed call
    failure_error: str | None = None
    failure_at: float | None = None
    children: list[int] = field(default_factory=list)  # the orchestrator's claude processes


@dataclass(slots=True)
class CrashInfo:
    """What the tail of a log says about why a process died."""

    error_type: str | None = None
    error_message: str | None = None
    stack_trace: str | None = None
    related_files: list[str] = field(default_factory=list)
    root_cause: str | None = None
    fingerprint: str | None = None
    log_excerpt: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(slots=True)
class ProcStats:
    """A live process as psutil saw it, identity included."""

    pid: int
    create_time: float
    status: str  # psutil status string: running, sleeping, stopped, zombie ...
    cpu_percent: float
    rss_bytes: int
    cmdline: list[str]
    ppid: int


@dataclass(slots=True)
class Issue:
    """One finding of a health check. ``to_dict`` gives the seed's issue shape."""

    type: str
    severity: Status
    error: str
    agent_pid: int | None = None
    agent_type: str | None = None
    task_id: str | None = None
    agent_key: str | None = None
    action_taken: str | None = None
    bug_reported: bool = False
    bug_number: int | None = None
    crash_id: int | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "type": self.type,
            "severity": self.severity,
            "error": self.error,
            "action_taken": self.action_taken,
            "bug_reported": self.bug_reported,
            "bug_number": self.bug_number,
        }
        for name in ("agent_pid", "agent_type", "task_id", "agent_key", "crash_id"):
            value = getattr(self, name)
            if value is not None:
                d[name] = value
        if self.details:
            d["details"] = self.details
        return d


@dataclass(slots=True)
class AgentView:
    """One row of the live agents table."""

    key: str
    pid: int
    agent_type: str
    task_id: str | None
    status: AgentStatus
    source: Source
    started_at: float | None
    cpu_percent: float | None
    rss_bytes: int | None
    respawns: int
    max_respawns: int
    next_respawn_at: float | None
    last_log_line: str | None
    command_text: str
    cwd: str | None
    log_file: str | None
    exit_code: int | None = None
    worktree_path: str | None = None
    worktree_branch: str | None = None
    children: list[int] = field(default_factory=list)  # a session's claude processes

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(slots=True)
class CrashRow:
    """One recorded crash (a row of ``agent_crashes``)."""

    crash_id: int
    crashed_at: float
    agent_key: str
    agent_pid: int
    agent_type: str
    task_id: str | None
    exit_code: int | None
    error_type: str | None
    error_message: str | None
    stack_trace: str | None
    root_cause: str | None
    related_files: list[str]
    fingerprint: str | None
    log_excerpt: str | None
    log_file: str | None
    command_text: str | None
    action_taken: str | None
    respawned: bool
    bug_reported: bool
    bug_number: int | None
    cwd: str | None = None
    source: str | None = None  # "real" | "ohm" | "ohm_spawned": where it came from
    fix_state: str | None = None  # pending | claimed | done | skipped

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(slots=True)
class BugRow:
    """One bug, as the tracker table and ohm's side table hold it."""

    bug_number: int
    title: str
    description: str
    priority: str
    status: str
    category: str | None
    reporter: str
    assigned_to: str | None
    created_at: float | None
    updated_at: float | None
    root_cause: str | None
    reproduction_steps: list[str]
    related_files: list[str]
    error_logs: str | None
    stack_trace: str | None
    fingerprint: str | None
    issue_type: str | None
    occurrences: int
    last_seen: float | None

    @property
    def label(self) -> str:
        return format_bug_number(self.bug_number)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["label"] = self.label
        return d


@dataclass(slots=True)
class Event:
    """One line of the timeline: crashed, respawned, gave_up, cleaned, restarted, bug_filed..."""

    event_id: int
    ts: float
    kind: str
    message: str
    agent_key: str | None = None
    agent_pid: int | None = None
    agent_type: str | None = None
    task_id: str | None = None
    crash_id: int | None = None
    bug_number: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(slots=True)
class HealthReport:
    """The result of one check. ``to_dict`` is the seed's result dict exactly."""

    status: Status
    issues: list[Issue]
    active_agents: int
    crashed_agents_last_hour: int
    respawn_success_rate: float | None
    orchestrator_last_poll: float | None  # seconds ago, None when unknown
    checked_at: float
    check_id: int | None = None
    extra_metrics: dict[str, Any] = field(default_factory=dict)
    sources: list[str] = field(default_factory=list)  # what this check read, in words

    def to_dict(self) -> dict[str, Any]:
        metrics: dict[str, Any] = {
            "active_agents": self.active_agents,
            "crashed_agents_last_hour": self.crashed_agents_last_hour,
            "respawn_success_rate": self.respawn_success_rate,
            "orchestrator_last_poll": self.orchestrator_last_poll,
        }
        metrics.update(self.extra_metrics)
        return {
            "status": self.status,
            "issues": [i.to_dict() for i in self.issues],
            "metrics": metrics,
        }


@dataclass(slots=True)
class Snapshot:
    """Everything a face needs to draw one frame, collected off the UI thread."""

    report: HealthReport
    agents: list[AgentView]
    crashes: list[CrashRow]  # newest first, bounded
    bugs: list[BugRow]  # open first, bounded
    events: list[Event]  # newest first, bounded
    crash_histogram: list[int]  # crashes per bucket, oldest first
    histogram_bucket_seconds: int
    open_bugs: int
    auto_fix: bool
    is_fixer: bool  # this monitor holds the fixer lease
    read_only: bool
    errors: list[str] = field(default_factory=list)


@dataclass(slots=True)
class ActionResult:
    """The outcome of one fix, manual or automatic."""

    ok: bool
    action: str
    message: str
    agent_key: str | None = None
    new_pid: int | None = None
    bug_number: int | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def format_bug_number(number: int) -> str:
    """``3`` -> ``"BUG-003"``, as the real tracker shows it."""
    return f"BUG-{number:03d}"


def parse_bug_number(text: str | int) -> int:
    """Accept ``BUG-003``, ``bug-3``, ``003`` or ``3``. Raises ``ValueError``."""
    if isinstance(text, int):
        return text
    s = text.strip().upper()
    if s.startswith("BUG-"):
        s = s[4:]
    if not s.isdigit():
        raise ValueError(f"not a bug number: {text!r} (expected e.g. BUG-003)")
    return int(s)


def worst(a: Status, b: Status) -> Status:
    return a if STATUS_ORDER[a] >= STATUS_ORDER[b] else b
