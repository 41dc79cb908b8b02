"""Plain data shared by the engine, the CLI and the console.

Everything here is a frozen-ish dataclass of builtins so that a snapshot can be
handed from the engine thread to the UI thread without locks, and turned into
JSON for ``--json`` output without custom encoders.

All times are UTC epoch seconds (``float``). Nothing here formats times for
people: faces do that with ``humanize``.
"""

from __future__ import annotations

import signal
from dataclasses import asdict, dataclass, field
from typing import Any

from ohm_tui.engine.model.enums import Source, Status
from ohm_tui.engine.model.lifecycle import AgentStatus


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
    issue_id: str | None = None  # "type:subject", what ``ohm ack`` takes (set by the check)
    ack: Ack | None = None  # set while an operator's acknowledgement holds

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "type": str(self.type),
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
        if self.issue_id is not None:
            d["issue_id"] = self.issue_id
        if self.ack is not None:
            d["ack"] = self.ack.to_dict()
        return d


@dataclass(slots=True)
class Ack:
    """An operator's acknowledgement of one issue (a row of ``ohm_acks``).

    It holds while the issue stays as it was when acknowledged: no worse
    severity, no bigger count, no newer crash (the ``*_at_ack`` fields), and
    until ``until`` if one was chosen.
    """

    ack_id: int
    issue_id: str  # "type:subject", e.g. "agent_crash:task:spec-20" or "crash_storm"
    issue_type: str
    by: str
    acked_at: float
    until: float | None  # None: until the issue changes or goes away
    severity_at_ack: str
    count_at_ack: int
    crash_id_at_ack: int | None
    error_at_ack: str
    ended_at: float | None = None
    end_reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


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
    # Spend of the agent's task in the cost window (session agents only; None = unknown).
    cost_usd: float | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    reason: str | None = None  # why it is not running, e.g. why its respawn could not start
    exit_signal: str | None = None  # "SIGKILL" when a signal ended it (exit code -9)
    worktree_path: str | None = None
    worktree_branch: str | None = None
    children: list[int] = field(default_factory=list)  # a session's claude processes

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def signal_name(exit_code: int | None) -> str | None:
    """The signal that ended a process, from its exit code as ``subprocess`` and ohm's
    runner write it (``-9`` is SIGKILL); None for a normal exit or an unknown one."""
    if exit_code is None or exit_code >= 0:
        return None
    try:
        return signal.Signals(-exit_code).name
    except ValueError:
        return f"signal {-exit_code}"


def ended_text(exit_code: int | None) -> str | None:
    """How a run ended, briefly: ``exit 1``, ``SIGKILL``; None when unknown."""
    if exit_code is None:
        return None
    return signal_name(exit_code) or f"exit {exit_code}"


def exit_code_text(exit_code: int | None) -> str:
    """An exit code with its signal: ``-9 (SIGKILL)``, ``1``, or ``-`` when unknown."""
    if exit_code is None:
        return "-"
    name = signal_name(exit_code)
    return f"{exit_code} ({name})" if name else str(exit_code)


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
    cost: CostSummary | None = None  # None: no claude_invocations.db (eras 1 and 2)
    # Agents ohm no longer tries to run: given up after its respawns, or whose
    # respawn could not start. Nothing runs their task until someone acts.
    given_up: int = 0


@dataclass(slots=True)
class CostRow:
    """Calls, tokens and spend of one group of ``claude_invocations`` rows.

    ``key`` is the agent type, the task id (``None``: not attributable) or the
    hour's start (UTC epoch seconds), depending on how rows were grouped.
    """

    key: str | float | None
    calls: int = 0
    errors: int = 0  # status error or timeout
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    duration_ms: int = 0

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["tokens"] = self.tokens
        return d


@dataclass(slots=True)
class CostSummary:
    """Spend of session agents, from ``claude_invocations.db``, ready to render.

    ``last_hour`` is the rolling last hour (the header's "$/h"); the ``by_*``
    lists cover ``since``..``until``. ``problem`` says why figures are missing
    (a locked or corrupt database) while the file exists.
    """

    database: str
    since: float
    until: float
    total: CostRow
    last_hour: CostRow
    by_type: list[CostRow] = field(default_factory=list)
    by_task: list[CostRow] = field(default_factory=list)
    budget_per_hour: float | None = None
    problem: str | None = None

    @property
    def over_budget(self) -> bool:
        return self.budget_per_hour is not None and self.last_hour.cost_usd > self.budget_per_hour

    def tasks(self) -> dict[str, CostRow]:
        """The window's figures by task id (calls that could be attributed)."""
        return {str(r.key): r for r in self.by_task if r.key is not None}

    def to_dict(self) -> dict[str, Any]:
        return {
            "database": self.database,
            "since": self.since,
            "until": self.until,
            "total": self.total.to_dict(),
            "last_hour": self.last_hour.to_dict(),
            "by_type": [r.to_dict() for r in self.by_type],
            "by_task": [r.to_dict() for r in self.by_task],
            "budget_per_hour": self.budget_per_hour,
            "over_budget": self.over_budget,
            "problem": self.problem,
        }


@dataclass(slots=True)
class RespawnPlan:
    """What a respawn will do: for a live agent, stop it first (a restart)."""

    restart: bool  # the agent is alive: it is stopped, and the new run starts once it is gone
    text: str  # the steps, one per line, exactly as the faces show them

    def __str__(self) -> str:
        return self.text


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


@dataclass(slots=True)
class RespawnState:
    """Respawn bookkeeping for one task key (``task:spec-20`` or ``type:architect``)."""

    task_key: str
    attempts: int = 0
    last_attempt_ts: float | None = None
    next_allowed_ts: float | None = None
    given_up: bool = False
    given_up_ts: float | None = None
    last_start_ts: float | None = None
    recent_fast_exits: list[float] = field(default_factory=list)
