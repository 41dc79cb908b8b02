"""Acknowledgements: an operator says "I know about this issue" and ohm stops
shouting about it, but never stops showing it.

An issue's identity is its type plus a subject (the task, the orchestrator's
failure reason, a state file...), the same for every issue type, so a new type
is ackable without code here. An ack records the issue as it was (severity, a
count, the newest crash) and holds only while the issue is no worse: a worse
severity, a bigger count or a newer crash lifts it, as does the chosen time
passing, or the issue being gone for ``RESOLVED_AFTER`` seconds (so that its
next occurrence, days later, is news again).

Pure functions over ``Issue`` lists; the monitor does the reading and writing.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from ohm_tui.engine.model import STATUS_ORDER, Ack, Issue, Status, task_key

RESOLVED_AFTER = 60.0  # seconds an acked issue must stay gone before its ack ends

# Detail keys that count how bad it is (part of its measure).
_COUNT_KEYS = ("count", "fast_exits")
_LIST_KEYS = ("entries", "pids")


def subject(issue: Issue) -> str:
    """What the issue is about, stable from check to check: ``task:spec-20``,
    ``loop_stale``, ``stale_entries``; empty for issues about the whole system.

    Free text (an error message, why a crash is a crash) is never part of it.
    """
    d = issue.details
    parts: list[str] = []
    if d.get("kind"):  # zombie "process" or "stale_entries"
        parts.append(str(d["kind"]))
    if d.get("task_key"):
        parts.append(str(d["task_key"]))
    elif issue.task_id or issue.agent_type:
        parts.append(task_key(issue.agent_type, issue.task_id))
    elif issue.agent_pid is not None:
        parts.append(f"pid:{issue.agent_pid}")
    elif d.get("reason"):  # the orchestrator's: loop_stale, process_gone, heartbeat_stale
        parts.append(str(d["reason"]))
    if d.get("file"):
        parts.append(f"file:{d['file']}")
    return ":".join(parts)


def issue_id(issue: Issue) -> str:
    """``type:subject`` (just ``type`` when there is no subject): what ``ohm ack`` takes."""
    sub = subject(issue)
    return f"{issue.type}:{sub}" if sub else str(issue.type)


def _count(issue: Issue) -> int:
    d = issue.details
    for key in _COUNT_KEYS:
        value = d.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    for key in _LIST_KEYS:
        value = d.get(key)
        if isinstance(value, list):
            return len(value)
    return 1


def _crash_id(issue: Issue) -> int | None:
    if issue.crash_id is not None:
        return issue.crash_id
    value = issue.details.get("last_crash_id")
    return value if isinstance(value, int) and not isinstance(value, bool) else None


@dataclass(frozen=True, slots=True)
class Measure:
    """How bad one issue (all its instances in one check) is, to compare with its ack."""

    severity: str
    count: int
    crash_id: int | None

    @classmethod
    def of(cls, issues: list[Issue]) -> Measure:
        severity: Status = "healthy"
        crash_ids = [c for c in (_crash_id(i) for i in issues) if c is not None]
        for issue in issues:
            if STATUS_ORDER[issue.severity] > STATUS_ORDER[severity]:
                severity = issue.severity
        return cls(
            severity, max((_count(i) for i in issues), default=0), max(crash_ids, default=None)
        )

    def worse_than(self, ack: Ack) -> str | None:
        """Why this is news compared with what was acknowledged, or ``None``."""
        if STATUS_ORDER.get(self.severity, 0) > STATUS_ORDER.get(ack.severity_at_ack, 0):
            return f"now {self.severity}"
        if self.crash_id is not None and (
            ack.crash_id_at_ack is None or self.crash_id > ack.crash_id_at_ack
        ):
            return "a new crash"
        if self.count > ack.count_at_ack:
            return f"count {ack.count_at_ack} -> {self.count}"
        return None


def group(issues: list[Issue]) -> dict[str, list[Issue]]:
    """Issues by identity (several issues can share one: a task's crash and its give-up)."""
    by_id: dict[str, list[Issue]] = defaultdict(list)
    for issue in issues:
        issue.issue_id = issue.issue_id or issue_id(issue)
        by_id[issue.issue_id].append(issue)
    return dict(by_id)


def merge(issues: list[Issue]) -> list[Issue]:
    """One issue per identity: a report lists each ``issue_id`` once, so that every face
    counts the same. Of several (a task that crashed, ran again and crashed again), the
    worst is kept, then the newest crash; ``details["occurrences"]`` says how many there
    were, its text also names the others' when they differ, and the lists that name
    what it covers (entries, pids) cover them all."""
    merged: list[Issue] = []
    for same in group(issues).values():
        if len(same) == 1:
            merged.append(same[0])
            continue
        keep = max(
            enumerate(same),
            key=lambda p: (STATUS_ORDER[p[1].severity], _crash_id(p[1]) or -1, p[0]),
        )[1]
        others = list(dict.fromkeys(i.error for i in same if i.error != keep.error))
        if others:  # several findings under one id (bad entries of one file): all named
            keep.error = "; also: ".join([keep.error, *others])
        details = {**keep.details, "occurrences": len(same)}
        for key in _LIST_KEYS:
            lists = [i.details[key] for i in same if isinstance(i.details.get(key), list)]
            if len(lists) > 1:
                details[key] = [x for lst in lists for x in lst]
        keep.details = details
        merged.append(keep)
    return merged


@dataclass(slots=True)
class Decision:
    """What to do with one open ack after a check."""

    ack: Ack
    holds: bool  # the ack applies to this check's issues
    end_reason: str | None = None  # end it (lifted, expired, resolved)
    missing_since: float | None = None  # new value for "gone since" (None: present)


def decide(
    issues: list[Issue], open_acks: list[tuple[Ack, float | None]], now: float
) -> list[Decision]:
    """Match open acks against this check's issues; mark the issues they hold for.

    ``open_acks`` pairs each ack with the time its issue was first found gone.
    """
    by_id = group(issues)
    decisions: list[Decision] = []
    for ack, missing_since in open_acks:
        if ack.until is not None and now >= ack.until:
            decisions.append(Decision(ack, False, "expired"))
            continue
        found = by_id.get(ack.issue_id)
        if not found:
            since = missing_since if missing_since is not None else now
            if now - since >= RESOLVED_AFTER:
                decisions.append(Decision(ack, False, "resolved", since))
            else:
                decisions.append(Decision(ack, False, None, since))
            continue
        why = Measure.of(found).worse_than(ack)
        if why is not None:
            decisions.append(Decision(ack, False, f"changed: {why}"))
            continue
        for issue in found:
            issue.ack = ack
        decisions.append(Decision(ack, True))
    return decisions


def rollup(issues: list[Issue]) -> Status:
    """The overall status: the worst severity among issues nobody acknowledged."""
    status: Status = "healthy"
    for issue in issues:
        if issue.ack is None and STATUS_ORDER[issue.severity] > STATUS_ORDER[status]:
            status = issue.severity
    return status


def resolve(ref: str, issues: list[Issue]) -> list[Issue]:
    """The current issues ``ref`` names: an exact ``issue_id``, else a type, a subject
    or a task id that names one identity only (``crash_storm``, ``spec-20``)."""
    by_id = group(issues)
    ref = ref.strip()
    if ref in by_id:
        return by_id[ref]
    matches = [
        iid
        for iid, found in by_id.items()
        if ref in (str(found[0].type), subject(found[0]), found[0].task_id)
        or subject(found[0]).endswith(f":{ref}")
    ]
    if len(matches) == 1:
        return by_id[matches[0]]
    if not matches:
        raise KeyError(f"no current issue matches {ref!r}" + _known(by_id))
    raise KeyError(f"{ref!r} matches several issues: " + ", ".join(sorted(matches)))


def _known(by_id: dict[str, list[Issue]]) -> str:
    if not by_id:
        return " (there are no issues now)"
    return " (current issues: " + ", ".join(sorted(by_id)) + ")"


def issue_for_agent(
    issues: list[Issue], agent_key: str | None, agent_type: str | None, task_id: str | None
) -> Issue | None:
    """The issue an agent's row (or one of its crashes) stands for, the worst first:
    what ``a`` on that row acknowledges."""
    subject_key = task_key(agent_type, task_id)
    found = [
        i
        for i in issues
        if (agent_key is not None and i.agent_key == agent_key)
        or (agent_key is not None and agent_key in _entry_keys(i))
        or subject(i) == subject_key
        or subject(i).endswith(f":{subject_key}")
    ]
    if not found:
        return None
    return min(found, key=lambda i: -STATUS_ORDER.get(i.severity, 0))


def _entry_keys(issue: Issue) -> set[str]:
    """Agent keys an issue lists in its details (the stale entries it is about)."""
    entries = issue.details.get("entries")
    if not isinstance(entries, list):
        return set()
    return {str(e["key"]) for e in entries if isinstance(e, dict) and e.get("key")}
