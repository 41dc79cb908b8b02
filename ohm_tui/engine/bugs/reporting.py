"""When to file a bug, and what it says. ``bugs.BugTracker`` does the filing,
deduplication and rate limiting; this module decides *what* is worth a bug.

Rules (issue 2): ``crash_threshold_for_bug`` crashes on one task, any
ImportError/ModuleNotFoundError crash, a given-up agent, a frozen loop
(Critical), zombies and stale entries (Low), flapping, a failed restart, and
session agents spending twice ``cost_budget_per_hour`` (Medium).
"""

from __future__ import annotations

import logging

from ohm_tui.engine import timeutil
from ohm_tui.engine.bugs.tracker import BugOutcome, BugTracker
from ohm_tui.engine.context import EngineContext
from ohm_tui.engine.fmt import count, plural
from ohm_tui.engine.model import CrashRow, HealthReport, IssueType, task_key

log = logging.getLogger("ohm.reporting")

IMPORT_ERRORS = ("ImportError", "ModuleNotFoundError")
CRASH_WINDOW = 24 * 3600.0
# Over budget is degraded; this many times the budget is a bug. Medium, not High:
# the orchestrator picks up High bugs and spends more on a fixing agent.
COST_BUG_RATIO = 2.0
RATE_LIMIT_RETRY = 300.0  # seconds before a rate-limited crash bug is tried again


class BugReporter:
    def __init__(self, ctx: EngineContext) -> None:
        self.ctx = ctx
        self._frozen_reported = False
        # Conditions (stale entries, zombies, flapping) reported in the previous
        # pass: a condition that persists is one occurrence, not one per check.
        self._conditions: set[str] = set()
        self._current: set[str] = set()
        self._held_back: dict[str, float] = {}  # fingerprint -> when it was rate-limited

    @property
    def tracker(self) -> BugTracker:
        return BugTracker(self.ctx.store, self.ctx.config, self.ctx.notifier)

    def run(self, report: HealthReport) -> list[int]:
        numbers: list[int] = []
        self._current = set()
        numbers += self._crash_bugs(report)
        numbers += self._freeze_bug(report)
        numbers += self._zombie_bug(report)
        numbers += self._flapping_bugs(report)
        numbers += self._cost_bug(report)
        numbers += self._respawn_failed_bugs(report)
        self._conditions = self._current
        return sorted(set(numbers))

    def _new_condition(self, fingerprint: str) -> bool:
        """True the first pass a condition is seen (again); later passes skip it."""
        self._current.add(fingerprint)
        return fingerprint not in self._conditions

    def _done(self, outcome: BugOutcome, numbers: list[int]) -> int | None:
        if outcome.bug_number is not None:
            numbers.append(outcome.bug_number)
        return outcome.bug_number

    # ------------------------------------------------------------ crashes
    def _crash_bugs(self, report: HealthReport) -> list[int]:
        store = self.ctx.store
        cfg = self.ctx.config
        now = timeutil.now()
        since = now - CRASH_WINDOW
        numbers: list[int] = []
        # Counted per task by the store: a pass reads one row per task, and the rows of
        # a task only when it is worth a bug (never every crash of the day every pass).
        # Given-up tasks in one query, not a respawn state per task every pass: tasks
        # that crashed once stay groups all day, and a read each made a daemon's check
        # cost grow with its history.
        # Every task still given up, whenever that was (as the per-task read saw it).
        given_up = {st.task_key: st for st in store.given_up_states(0.0)}
        for g in store.crash_groups(since, flagged=IMPORT_ERRORS):
            if not g.unbugged:
                continue
            tk = g.task_key
            count = g.count
            if not (count >= cfg.crash_threshold_for_bug or g.flagged or tk in given_up):
                continue
            st = given_up.get(tk) or store.get_respawn_state(tk)
            ids = store.task_crash_ids(tk, since)
            newest = store.get_crash(ids[0][0]) if ids else None
            if newest is None:  # pruned meanwhile
                continue
            unbugged = [crash_id for crash_id, has_bug in ids if not has_bug]
            fp = newest.fingerprint or f"crash:{tk}:{newest.error_type}"
            held = self._held_back.get(fp)
            if held is not None and now - held < RATE_LIMIT_RETRY:
                continue  # rate-limited a moment ago: one event, not one per cycle
            outcome = self.tracker.report(
                issue_type="agent_crash",
                fingerprint=fp,
                title=_crash_title(newest),
                description=_crash_description(newest, count, bool(st.given_up), st.attempts),
                priority=self.tracker.priority_for(newest.error_type, count),
                category="crash",
                root_cause=_new_cause(newest),
                related_files=newest.related_files,
                reproduction_steps=[
                    "Start orchestrator",
                    f"Spawn {newest.agent_type} for task {newest.task_id or '(none)'}"
                    + (f": {newest.command_text}" if newest.command_text else ""),
                    f"Observe crash: {newest.error_type or 'exit'}"
                    + (f" ({newest.error_message})" if newest.error_message else ""),
                ],
                error_logs=newest.log_excerpt,
                stack_trace=newest.stack_trace,
                metadata={
                    "agent_type": newest.agent_type,
                    "task_id": newest.task_id,
                    "crash_ids": [crash_id for crash_id, _ in ids][-50:],
                    "crash_count": count,
                    "given_up": bool(st.given_up),
                },
                occurrences=len(unbugged),  # every crash counts, not every pass
            )
            if outcome.rate_limited:
                self._held_back[fp] = now
            n = self._done(outcome, numbers)
            if n is not None:
                self._held_back.pop(fp, None)
                for crash_id in unbugged:
                    store.set_crash_bug(crash_id, n)
                for issue in report.issues:
                    if (
                        issue.type == "agent_crash"
                        and task_key(issue.agent_type, issue.task_id) == tk
                    ):
                        issue.bug_reported, issue.bug_number = True, n
        return numbers

    # ------------------------------------------------------------ the loop
    def _freeze_bug(self, report: HealthReport) -> list[int]:
        frozen = [
            i for i in report.issues if i.type == "orchestrator_freeze" and i.severity == "critical"
        ]
        if not frozen:
            self._frozen_reported = False
            return []
        if self._frozen_reported:
            return []
        numbers: list[int] = []
        # The heartbeat the sources read (era 2+: orchestrator_state in the database).
        judged = next((i.details for i in frozen if i.details.get("heartbeat_path")), None)
        path = self.ctx.config.work_loop_state_path
        where = str(judged["heartbeat_path"]) if judged else str(path)
        heartbeat = str(judged["heartbeat"]) if judged else f"last_update in {path.name}"
        outcome = self.tracker.report(
            issue_type="orchestrator_freeze",
            fingerprint=f"orchestrator_freeze:{where}",
            title="Orchestrator loop frozen",
            description="\n".join(i.error for i in frozen)
            + f"\nHeartbeat: {heartbeat} ({where})."
            + (
                "\nA restart command is configured; ohm attempts a restart."
                if self.ctx.config.orchestrator_restart_command
                else "\nNo orchestrator_restart_command is configured: restart it by hand."
            ),
            priority="Critical",
            category="freeze",
            root_cause=frozen[0].error,
            reproduction_steps=["Run the orchestrator", f"Watch {heartbeat} stop advancing"],
        )
        self._frozen_reported = True
        n = self._done(outcome, numbers)
        for issue in frozen:
            issue.bug_reported, issue.bug_number = n is not None, n
        if any(i.ack is None for i in frozen):  # acknowledged: recorded, not shouted
            self.ctx.notifier.alert("critical", frozen[0].error)
        return numbers

    def restart_failed(self, message: str) -> None:
        try:
            self.tracker.report(
                issue_type="restart_failed",
                fingerprint=f"restart_failed:{self.ctx.config.work_loop_state_path}",
                title="Orchestrator restart failed",
                description=message,
                priority="Critical",
                category="freeze",
                root_cause=message,
            )
        except Exception:
            log.exception("could not file the restart-failed bug")
            raise

    # ------------------------------------------------------------ zombies, flapping
    def _zombie_bug(self, report: HealthReport) -> list[int]:
        zombies = [i for i in report.issues if i.type == "zombie"]
        if not zombies:
            return []
        numbers: list[int] = []
        stale = [i for i in zombies if i.details.get("kind") == "stale_entries"]
        # A zombie is an issue once it lingers, a bug only once it lingers much longer.
        procs_ = [
            i
            for i in zombies
            if i.details.get("kind") != "stale_entries"
            and float(i.details.get("age", 0.0)) >= self.ctx.config.zombie_bug_after
        ]
        stale_fp = f"zombie:stale_entries:{self.ctx.config.agent_state_path}"
        if stale and self._new_condition(stale_fp):
            entries = stale[0].details.get("entries", [])
            outcome = self.tracker.report(
                issue_type="zombie",
                fingerprint=stale_fp,
                title="Stale agent entries in agent_state.json",
                description=f"{count(len(entries), 'agent')} still listed as active whose process "
                "is gone, whatever their status (moved to completed_agents by ohm).",
                priority="Low",
                category="zombie",
                related_files=[str(self.ctx.config.agent_state_path)],
                metadata={"pids": [e.get("pid") for e in entries][:200]},
            )
            n = self._done(outcome, numbers)
            for issue in stale:
                issue.bug_reported, issue.bug_number = n is not None, n
        if procs_ and self._new_condition("zombie:processes"):
            outcome = self.tracker.report(
                issue_type="zombie",
                fingerprint="zombie:processes",
                title="Zombie processes detected",
                description="\n".join(i.error for i in procs_),
                priority="Low",
                category="zombie",
            )
            n = self._done(outcome, numbers)
            for issue in procs_:
                issue.bug_reported, issue.bug_number = n is not None, n
        return numbers

    def _flapping_bugs(self, report: HealthReport) -> list[int]:
        numbers: list[int] = []
        for issue in report.issues:
            if issue.type != "flapping":
                continue
            tk = str(issue.details.get("task_key"))
            if not self._new_condition(f"flapping:{tk}"):
                continue
            outcome = self.tracker.report(
                issue_type="flapping",
                fingerprint=f"flapping:{tk}",
                title=f"Agent flapping on {tk}: exits soon after every start",
                description=issue.error,
                priority="Medium",
                category="crash",
            )
            n = self._done(outcome, numbers)
            issue.bug_reported, issue.bug_number = n is not None, n
        return numbers

    def _cost_bug(self, report: HealthReport) -> list[int]:
        """One bug while spend stays at twice the budget or more (one occurrence per episode)."""
        over = [
            i
            for i in report.issues
            if i.type == "cost_over_budget" and float(i.details.get("ratio", 0.0)) >= COST_BUG_RATIO
        ]
        if not over:
            return []
        issue = over[0]
        fp = f"cost_over_budget:{issue.details.get('database')}"
        if not self._new_condition(fp):
            return []
        numbers: list[int] = []
        outcome = self.tracker.report(
            issue_type="cost_over_budget",
            fingerprint=fp,
            title="Session agents spend over twice the hourly cost budget",
            description=issue.error
            + f"\nCalls in the last hour: {issue.details.get('calls_last_hour')}, "
            f"tokens: {issue.details.get('tokens_last_hour')}."
            + "\nSee where it goes: ohm cost --last 1h --by task",
            priority="Medium",
            category="cost",
            root_cause=issue.error,
            related_files=[str(issue.details.get("database"))],
            metadata={
                k: issue.details.get(k)
                for k in ("cost_last_hour_usd", "budget_per_hour", "ratio", "calls_last_hour")
            },
        )
        n = self._done(outcome, numbers)
        issue.bug_reported, issue.bug_number = n is not None, n
        return numbers

    def _respawn_failed_bugs(self, report: HealthReport) -> list[int]:
        """A crash whose respawn could not start: nothing runs that task now.

        One bug per task while it lasts, naming what could not be started and why.
        """
        numbers: list[int] = []
        for issue in report.issues:
            if issue.type != IssueType.RESPAWN_FAILED:
                continue
            tk = str(issue.details.get("task_key"))
            fp = f"respawn_failed:{tk}"
            if not self._new_condition(fp):
                continue
            reason = str(issue.details.get("reason") or issue.error)
            who = f"{issue.agent_type or 'agent'} on {issue.task_id or tk}"
            crash = self.ctx.store.get_crash(issue.crash_id) if issue.crash_id else None
            lines = [
                f"{who} crashed and ohm could not start its respawn, so nothing runs "
                "this task now.",
                f"What failed: {reason}",
            ]
            if crash is not None and crash.command_text:
                lines.append(f"Command: {crash.command_text}")
            if crash is not None and crash.cwd:
                lines.append(f"Working directory: {crash.cwd}")
            lines.append("Fix the cause, then respawn it by hand (r in the console, ohm respawn).")
            outcome = self.tracker.report(
                issue_type=IssueType.RESPAWN_FAILED,
                fingerprint=fp,
                title=f"Cannot respawn {who}: {reason}"[:200],
                description="\n".join(lines),
                priority="High",
                category="respawn",
                root_cause=reason,
                reproduction_steps=[
                    f"Let {who} crash",
                    "ohm respawns it with the same command and working directory",
                    f"Observe: {reason}",
                ],
                metadata={"task_key": tk, "agent_key": issue.agent_key},
            )
            n = self._done(outcome, numbers)
            issue.bug_reported, issue.bug_number = n is not None, n
        return numbers


def _new_cause(c: CrashRow) -> str | None:
    """The root cause when it says more than the error does; None when it only
    repeats ``Type: message`` (told once already, in the title and the description)."""
    cause = " ".join((c.root_cause or "").split())
    if not cause:
        return None
    etype = (c.error_type or "").strip()
    message = " ".join((c.error_message or "").split())
    return None if cause in (etype, message, f"{etype}: {message}") else c.root_cause


def _crash_title(c: CrashRow) -> str:
    """``architect agent crashes with ImportError: Missing SkillNames export in a.py``;
    a cause that starts with the error type does not say the type twice."""
    what = c.error_type or "a crash"
    title = f"{c.agent_type} agent crashes with {what}"
    cause = _new_cause(c) or (c.root_cause and c.error_message) or ""  # the message once
    cause = " ".join(cause.split())
    if c.error_type and cause.startswith((f"{c.error_type}:", f"{c.error_type} ")):
        title = f"{c.agent_type} agent crashes with {cause}"
    elif cause:
        title += f": {cause}"
    return title[:200]


def _crash_description(c: CrashRow, count: int, given_up: bool, attempts: int) -> str:
    lines = [
        f"{c.agent_type} agent on task {c.task_id or '(none)'} crashed {count} "
        f"{plural(count, 'time')} in the last 24 hours.",
    ]
    if c.error_type:
        lines.append(f"Error: {c.error_type}: {c.error_message or ''}".rstrip(": "))
    cause = _new_cause(c)
    if cause:
        lines.append(f"Root cause: {cause}")
    if given_up:
        lines.append(
            f"ohm gave up after {attempts} {plural(attempts, 'respawn')}; the agent stays down."
        )
    if c.command_text:
        lines.append(f"Command: {c.command_text}")
    if c.log_file:
        lines.append(f"Log: {c.log_file}")
    return "\n".join(lines)
