"""The worst issue in a few words, for the console's header and toasts and the CLI.

"CRITICAL" alone tells an operator nothing: ``crash storm: 24/h`` or
``loop frozen`` says where to look. Acknowledged issues are not the headline
(they no longer make the status); they are counted apart.
"""

from __future__ import annotations

from ohm_tui.engine import fmt
from ohm_tui.engine.model import STATUS_ORDER, HealthReport, Issue, IssueType
from ohm_tui.engine.sources.logtail import sanitize

# Among issues of one severity, the one an operator should look at first.
_PRIORITY: dict[str, int] = {
    IssueType.ORCHESTRATOR_FREEZE: 0,
    IssueType.ORCHESTRATOR_GONE: 0,
    IssueType.CRASH_STORM: 1,
    IssueType.AGENT_CRASH: 2,
    IssueType.RESPAWN_FAILED: 2,
    IssueType.STORAGE_ERROR: 3,
    IssueType.STATE_FILE_ERROR: 3,
    IssueType.FLAPPING: 4,
    IssueType.DUPLICATE_AGENTS: 5,
    IssueType.MULTIPLE_ORCHESTRATORS: 5,
    IssueType.STALLED_AGENT: 6,
    IssueType.ZOMBIE: 7,
    IssueType.AGENT_ERRORS: 8,
}
_FREEZE_WORDS = {
    "loop_stale": "loop frozen",
    "process_gone": "orchestrator gone",
    "process_stopped": "orchestrator stopped",
    "heartbeat_stale": "heartbeat silent",
}
MAX_NAME = 18  # an agent or task name longer than this is cut


def _name(value: str | None) -> str:
    s = " ".join(sanitize(value or "").split())
    return s if len(s) <= MAX_NAME else s[: MAX_NAME - 1] + "…"


def _who(issue: Issue) -> str:
    return _name(issue.task_id or issue.agent_type or (str(issue.agent_pid or "") or None))


def words(issue: Issue) -> str:
    """``crash storm: 24/h``, ``spec-20 crashed: ImportError``, ``loop frozen``."""
    d = issue.details
    kind = issue.type
    if kind == IssueType.CRASH_STORM:
        count = d.get("count")
        return f"crash storm: {count}/h" if isinstance(count, int) else "crash storm"
    if kind == IssueType.ORCHESTRATOR_FREEZE:
        return _FREEZE_WORDS.get(str(d.get("reason")), "orchestrator frozen")
    if kind == IssueType.AGENT_CRASH:
        if d.get("given_up"):
            return f"{_who(issue)} given up"
        error = issue.error.split(":", 1)[0] if issue.error else ""
        error = _name(error) if error and " " not in error else ""
        return f"{_who(issue)} crashed" + (f": {error}" if error else "")
    if kind == IssueType.RESPAWN_FAILED:
        return f"{_who(issue)} respawn failed"
    if kind == IssueType.ZOMBIE:
        if d.get("kind") == "stale_entries":
            n = len(d.get("entries") or [])
            return fmt.count(n, "stale entry")
        return f"zombie {_who(issue)}".rstrip()
    if kind == IssueType.DUPLICATE_AGENTS:
        return f"{len(d.get('pids') or [])} agents on {_name(issue.task_id)}"
    if kind == IssueType.MULTIPLE_ORCHESTRATORS:
        return f"{len(d.get('pids') or [])} orchestrators"
    if kind == IssueType.STALLED_AGENT:
        return f"{_who(issue)} stalled"
    if kind == IssueType.FLAPPING:
        return f"{_who(issue)} flapping"
    if kind == IssueType.AGENT_ERRORS:
        return f"{_who(issue)} logs errors"
    if kind == IssueType.STATE_FILE_ERROR:
        return "state file unreadable"
    if kind == IssueType.STORAGE_ERROR:
        return "database trouble"
    if kind == IssueType.COST_OVER_BUDGET:
        return "over the cost budget"
    who = _who(issue)
    return str(kind).replace("_", " ") + (f": {who}" if who else "")


def rank(issue: Issue) -> tuple[int, int]:
    """Sort key: worst severity first, then the type an operator should see first."""
    return (-STATUS_ORDER.get(issue.severity, 0), _PRIORITY.get(issue.type, 9))


def worst(issues: list[Issue]) -> Issue | None:
    """The unacknowledged issue that makes the status, or ``None``."""
    live = [i for i in issues if i.ack is None and i.severity != "healthy"]
    return min(live, key=rank) if live else None


def headline(report: HealthReport) -> str:
    """The cause of the status in a few words (``""`` when healthy), with how many
    more unacknowledged issues there are: ``crash storm: 24/h (+2 more)``."""
    top = worst(report.issues)
    if top is None:
        return ""
    others = len({i.issue_id or id(i) for i in report.issues if i.ack is None}) - 1
    return words(top) + (f" (+{others} more)" if others > 0 else "")


def acked_count(report: HealthReport) -> int:
    """How many distinct issues are acknowledged right now."""
    return len({i.issue_id for i in report.issues if i.ack is not None})
