"""Open issues as alerts: stable labels per issue, and what changed since last time.

An alert is identified by its labels (as Alertmanager identifies it). An issue
that goes away, is acknowledged, or changes severity ends its old alert.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ohm_tui.engine.model import HealthReport, Issue, IssueType, format_bug_number

# One alertname per issue type (Prometheus style: CamelCase, "Ohm" prefix). The
# frozen loop has the name of the shipped Prometheus rule that fires for it.
ALERT_NAMES: dict[IssueType, str] = {
    IssueType.AGENT_CRASH: "OhmAgentCrash",
    IssueType.AGENT_ERRORS: "OhmAgentErrors",
    IssueType.ZOMBIE: "OhmZombie",
    IssueType.STALE_ENTRIES: "OhmStaleEntries",
    IssueType.DUPLICATE_AGENTS: "OhmDuplicateAgents",
    IssueType.MULTIPLE_ORCHESTRATORS: "OhmMultipleOrchestrators",
    IssueType.STALLED_AGENT: "OhmAgentStalled",
    IssueType.BLOCKED_ON_OUTPUT: "OhmAgentBlockedOnOutput",
    IssueType.FLAPPING: "OhmAgentFlapping",
    IssueType.ORCHESTRATOR_FREEZE: "OhmLoopFrozen",
    IssueType.ORCHESTRATOR_GONE: "OhmOrchestratorGone",
    IssueType.HEARTBEAT_STALE: "OhmHeartbeatStale",
    IssueType.CRASH_STORM: "OhmCrashStorm",
    IssueType.STATE_FILE_ERROR: "OhmStateFileError",
    IssueType.STORAGE_ERROR: "OhmStorageError",
    IssueType.COST_OVER_BUDGET: "OhmCostOverBudget",
    IssueType.RESPAWN_FAILED: "OhmRespawnFailed",
}

# ohm's degraded is Prometheus's "warning".
SEVERITIES = {"critical": "critical", "degraded": "warning"}
SEVERITY_RANK = {"warning": 1, "critical": 2}
MAX_TEXT = 1000  # annotation values are bounded: they come from agents' logs


def alert_name(issue_type: str) -> str:
    """``OhmAgentCrash`` for ``agent_crash``; an unknown type still gets a stable name."""
    try:
        return ALERT_NAMES[IssueType(issue_type)]
    except ValueError:
        return "Ohm" + "".join(w.capitalize() for w in str(issue_type).split("_"))


@dataclass(slots=True)
class Alert:
    """One open (or just ended) issue, as Alertmanager and webhooks get it."""

    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: float
    ends_at: float | None = None  # set once it resolved

    @property
    def key(self) -> tuple[tuple[str, str], ...]:
        return tuple(sorted(self.labels.items()))

    @property
    def severity(self) -> str:
        return self.labels.get("severity", "warning")

    @property
    def resolved(self) -> bool:
        return self.ends_at is not None

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": "resolved" if self.resolved else "firing",
            "labels": dict(self.labels),
            "annotations": dict(self.annotations),
            "starts_at": self.starts_at,
            "ends_at": self.ends_at,
        }


def _clip(text: object) -> str:
    s = str(text)
    return s if len(s) <= MAX_TEXT else s[: MAX_TEXT - 1] + "…"


def summary(issue: Issue) -> str:
    """One short line for people: what, and to whom."""
    what = str(issue.type).replace("_", " ")
    who = issue.agent_type or ""
    if issue.task_id:
        who = f"{who} task {issue.task_id}".strip()
    return f"{what}: {who}" if who else what


def alert_from_issue(
    issue: Issue, instance: str, starts_at: float, root_cause: str | None = None
) -> Alert:
    severity = SEVERITIES.get(issue.severity, "warning")
    labels = {
        "alertname": alert_name(issue.type),
        "instance": instance,
        "severity": severity,
        "issue_id": issue.issue_id or str(issue.type),
    }
    if issue.agent_type:
        labels["agent_type"] = issue.agent_type
    annotations = {"summary": _clip(summary(issue)), "description": _clip(issue.error)}
    cause = root_cause or issue.details.get("root_cause")
    if cause:
        annotations["root_cause"] = _clip(cause)
    if issue.bug_number is not None:
        annotations["bug_number"] = format_bug_number(issue.bug_number)
    return Alert(labels=labels, annotations=annotations, starts_at=starts_at)


@dataclass
class AlertBook:
    """What is firing now; each ``update`` returns the alerts that started and ended."""

    instance: str
    firing: dict[tuple[tuple[str, str], ...], Alert] = field(default_factory=dict)

    def update(
        self, report: HealthReport, root_causes: dict[int, str] | None = None
    ) -> tuple[list[Alert], list[Alert]]:
        """(started, ended) since the last report. Acknowledged issues are not firing:
        acknowledging one ends its alert, and an ack that lifts starts it again."""
        causes = root_causes or {}
        now_firing: dict[tuple[tuple[str, str], ...], Alert] = {}
        for issue in report.issues:
            if issue.ack is not None or issue.severity not in SEVERITIES:
                continue
            cause = causes.get(issue.crash_id) if issue.crash_id is not None else None
            alert = alert_from_issue(issue, self.instance, report.checked_at, cause)
            known = self.firing.get(alert.key)
            if known is not None:
                alert.starts_at = known.starts_at  # the same alert, maybe fresher text
            now_firing.setdefault(alert.key, alert)
        started = [a for k, a in now_firing.items() if k not in self.firing]
        ended: list[Alert] = []
        for k, a in self.firing.items():
            if k not in now_firing:
                a.ends_at = report.checked_at
                ended.append(a)
        self.firing = now_firing
        return started, ended
