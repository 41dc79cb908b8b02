"""The model room: plain records, enums and naming rules. Imports nothing else of ohm.

Modules: ``enums`` (statuses, issue types, event kinds), ``records`` (dataclasses passed
between layers), ``process`` (a /proc line), ``observation`` (one run as a check saw it),
``naming`` (agent / task keys, slugs).
"""

from __future__ import annotations

from ohm_tui.engine.model.enums import (
    OPERATOR_STOPS as OPERATOR_STOPS,
)
from ohm_tui.engine.model.enums import (
    STATUS_ORDER as STATUS_ORDER,
)
from ohm_tui.engine.model.enums import (
    AgentStatus as AgentStatus,
)
from ohm_tui.engine.model.enums import (
    EventKind as EventKind,
)
from ohm_tui.engine.model.enums import (
    IssueType as IssueType,
)
from ohm_tui.engine.model.enums import (
    Source as Source,
)
from ohm_tui.engine.model.enums import (
    Status as Status,
)
from ohm_tui.engine.model.naming import (
    agent_key as agent_key,
)
from ohm_tui.engine.model.naming import (
    slug as slug,
)
from ohm_tui.engine.model.naming import (
    task_key as task_key,
)
from ohm_tui.engine.model.observation import (
    ExitInfo as ExitInfo,
)
from ohm_tui.engine.model.observation import (
    Liveness as Liveness,
)
from ohm_tui.engine.model.observation import (
    Observation as Observation,
)
from ohm_tui.engine.model.process import (
    STATE_NAMES as STATE_NAMES,
)
from ohm_tui.engine.model.process import (
    RawProc as RawProc,
)
from ohm_tui.engine.model.records import (
    Ack as Ack,
)
from ohm_tui.engine.model.records import (
    ActionResult as ActionResult,
)
from ohm_tui.engine.model.records import (
    AgentRecord as AgentRecord,
)
from ohm_tui.engine.model.records import (
    AgentView as AgentView,
)
from ohm_tui.engine.model.records import (
    BugRow as BugRow,
)
from ohm_tui.engine.model.records import (
    CostRow as CostRow,
)
from ohm_tui.engine.model.records import (
    CostSummary as CostSummary,
)
from ohm_tui.engine.model.records import (
    CrashInfo as CrashInfo,
)
from ohm_tui.engine.model.records import (
    CrashRow as CrashRow,
)
from ohm_tui.engine.model.records import (
    Event as Event,
)
from ohm_tui.engine.model.records import (
    HealthReport as HealthReport,
)
from ohm_tui.engine.model.records import (
    Issue as Issue,
)
from ohm_tui.engine.model.records import (
    ProcStats as ProcStats,
)
from ohm_tui.engine.model.records import (
    RespawnPlan as RespawnPlan,
)
from ohm_tui.engine.model.records import (
    SessionHealth as SessionHealth,
)
from ohm_tui.engine.model.records import (
    Snapshot as Snapshot,
)
from ohm_tui.engine.model.records import (
    ended_text as ended_text,
)
from ohm_tui.engine.model.records import (
    exit_code_text as exit_code_text,
)
from ohm_tui.engine.model.records import (
    format_bug_number as format_bug_number,
)
from ohm_tui.engine.model.records import (
    parse_bug_number as parse_bug_number,
)
from ohm_tui.engine.model.records import (
    signal_name as signal_name,
)
