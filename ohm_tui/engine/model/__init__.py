"""The model room: plain records, enums and naming rules. Imports nothing else of ohm.

Modules: ``enums`` (statuses, issue types, event kinds), ``records`` (dataclasses passed
between layers), ``process`` (a /proc line), ``observation`` (one run as a check saw it),
``naming`` (agent / task keys, slugs).
"""

from __future__ import annotations

from ohm_tui.engine.model.enums import (
    OPERATOR_STOPS,
    PRIORITIES,
    PRIORITY_RANK,
    STATUS_ORDER,
    AgentStatus,
    EventKind,
    IssueType,
    Priority,
    Source,
    Status,
)
from ohm_tui.engine.model.lifecycle import TRANSITIONS, IllegalTransition, Lifecycle, advance
from ohm_tui.engine.model.naming import (
    agent_key,
    is_process_id,
    session_key,
    slug,
    split_command,
    task_key,
)
from ohm_tui.engine.model.observation import ExitInfo, Liveness, Observation
from ohm_tui.engine.model.process import STATE_NAMES, RawProc
from ohm_tui.engine.model.records import (
    Ack,
    ActionResult,
    AgentRecord,
    AgentView,
    BugRow,
    CostRow,
    CostSummary,
    CrashInfo,
    CrashRow,
    Event,
    HealthReport,
    Issue,
    RespawnPlan,
    RespawnState,
    SessionHealth,
    Snapshot,
    ended_text,
    exit_code_text,
    format_bug_number,
    parse_bug_number,
    signal_name,
)

__all__ = [
    "OPERATOR_STOPS",
    "PRIORITIES",
    "PRIORITY_RANK",
    "STATE_NAMES",
    "STATUS_ORDER",
    "TRANSITIONS",
    "Ack",
    "ActionResult",
    "AgentRecord",
    "AgentStatus",
    "AgentView",
    "BugRow",
    "CostRow",
    "CostSummary",
    "CrashInfo",
    "CrashRow",
    "Event",
    "EventKind",
    "ExitInfo",
    "HealthReport",
    "IllegalTransition",
    "Issue",
    "IssueType",
    "Lifecycle",
    "Liveness",
    "Observation",
    "Priority",
    "RawProc",
    "RespawnPlan",
    "RespawnState",
    "SessionHealth",
    "Snapshot",
    "Source",
    "Status",
    "advance",
    "agent_key",
    "ended_text",
    "exit_code_text",
    "format_bug_number",
    "is_process_id",
    "parse_bug_number",
    "session_key",
    "signal_name",
    "slug",
    "split_command",
    "task_key",
]
