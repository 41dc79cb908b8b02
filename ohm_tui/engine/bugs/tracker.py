"""Bug tracking on the real tracker's ``bugs`` table: file, deduplicate, rate limit.

The real system filed the same bug twice because its deduplication raised and the
exception was swallowed. Here a failed deduplication raises ``BugDedupError`` and
nothing is filed; the decision (look up, rate limit, insert) runs inside one write
transaction so two monitors racing on the same fault file one bug.

Each bug is mirrored to ``tickets/BUG-003.md`` in the real tracker's format, and
``bug_command`` (if configured) receives new bugs as JSON on stdin.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ohm_tui.engine.config import PRIORITIES, Config
from ohm_tui.engine.fmt import article, count, duration, seconds_ago
from ohm_tui.engine.model import PRIORITY_RANK, BugRow, format_bug_number
from ohm_tui.engine.notify import Notifier, run_command
from ohm_tui.engine.sources.logtail import sanitize
from ohm_tui.engine.store import Store, StoreError
from ohm_tui.engine.timeutil import iso_local_naive
from ohm_tui.engine.timeutil import now as _now

log = logging.getLogger("ohm.bugs")

# Bugs whose occurrences are crashes: many occurrences make them Critical.
_CRASH_CATEGORY = "crash"
_BACKTICKS = re.compile(r"`+")
_STATUS_LINE = re.compile(r"^\*\*Status\*\*:.*$", re.MULTILINE)
_PRIORITY_LINE = re.compile(r"^\*\*Priority\*\*:.*$", re.MULTILINE)
# The real tracker's status line: an emoji by status, then the status title-cased.
STATUS_EMOJI: dict[str, str] = {
    "open": "\U0001f534",
    "analyzing": "\U0001f50d",
    "in_progress": "\U0001f7e1",
    "testing": "\U0001f9ea",
    "resolved": "\u2705",
    "closed": "\u26ab",
}
# Last line of every ticket ohm writes: ohm may rewrite those whole.
OHM_MARKER = "<!-- written by ohm: rewritten on every change -->"


class BugDedupError(RuntimeError):
    """Deduplication could not be done, so no bug was filed (never swallowed)."""


@dataclass(slots=True)
class BugOutcome:
    """What ``BugTracker.report`` did."""

    bug_number: int | None
    created: bool
    updated: bool
    rate_limited: bool
    message: str


def more_severe(a: str, b: str) -> str:
    """The higher of two priorities (Critical > High > Medium > Low)."""
    return a if PRIORITY_RANK.get(a, 9) <= PRIORITY_RANK.get(b, 9) else b


def _check_priority(priority: str) -> None:
    if priority not in PRIORITIES:
        raise ValueError(f"priority must be one of {', '.join(PRIORITIES)}, got {priority!r}")


class BugTracker:
    """Files and maintains bugs in the store; mirrors tickets; runs the hook."""

    def __init__(self, store: Store, config: Config, notifier: Notifier | None = None) -> None:
        self.store = store
        self.config = config
        self.notifier = notifier

    # -- priorities ------------------------------------------------------------
    def priority_for(
        self, error_type: str | None, crash_count: int, default: str = "Medium"
    ) -> str:
        if crash_count > self.config.critical_crash_count:
            return "Critical"
        if error_type and error_type in self.config.bug_priority_mapping:
            return self.config.bug_priority_mapping[error_type]
        return default

    # -- automatic reports -----------------------------------------------------
    def report(
        self,
        *,
        issue_type: str,
        fingerprint: str,
        title: str,
        description: str,
        priority: str,
        category: str,
        root_cause: str | None = None,
        related_files: list[str] | None = None,
        reproduction_steps: list[str] | None = None,
        error_logs: str | None = None,
        stack_trace: str | None = None,
        assigned_to: str | None = None,
        metadata: dict[str, Any] | None = None,
        now: float | None = None,
        occurrences: int = 1,
    ) -> BugOutcome:
        """File a bug for a fault, or count one more occurrence of its open bug.

        ``occurrences``: how many new occurrences this report stands for (several
        crashes seen in one pass each count).

        Raises ``BugDedupError`` when the open-bug lookup or the rate-limit lookup
        fails (nothing is filed then), ``StoreError`` when filing itself fails.
        Do not call it inside ``store.transaction()``: the hook runs after commit.
        """
        _check_priority(priority)
        if not fingerprint:
            raise BugDedupError(f"cannot deduplicate {issue_type!r}: empty fingerprint")
        # Titles, messages, commands and logs come from agents: store them inert, so
        # no face (console, CLI, ticket, hook) can be made to replay an escape sequence.
        title, description = sanitize(title), sanitize(description)
        root_cause = sanitize(root_cause) if root_cause else root_cause
        error_logs = sanitize(error_logs) if error_logs else error_logs
        stack_trace = sanitize(stack_trace) if stack_trace else stack_trace
        reproduction_steps = [sanitize(str(x)) for x in reproduction_steps or []]
        related_files = [sanitize(str(x)) for x in related_files or []]
        at = _now() if now is None else now
        with _Guard(self.store, fingerprint):
            existing = self._open_bug(issue_type, fingerprint)
            if existing is not None:
                number = existing.bug_number
                outcome, escalated = self._count_again(
                    existing, priority, category, at, max(1, occurrences)
                )
            else:
                limited = self._rate_limit(issue_type, fingerprint, title, at)
                if limited is not None:
                    return limited
                number = self.store.insert_bug(
                    title=title,
                    description=description,
                    priority=priority,
                    category=category,
                    reporter="ohm",
                    assigned_to=assigned_to or self.config.default_assignee,
                    reproduction_steps=list(reproduction_steps or []),
                    root_cause=root_cause,
                    related_files=list(related_files or []),
                    metadata=dict(metadata or {}),
                    fingerprint=fingerprint,
                    issue_type=issue_type,
                    error_logs=error_logs,
                    stack_trace=stack_trace,
                    now=at,
                    number_taken=self._ticket_exists,
                )
                if occurrences > 1:
                    self.store.touch_bug(number, occurrences_delta=occurrences - 1, last_seen=at)
                self._note_ticket_path(number)
                label = format_bug_number(number)
                self.store.add_event(
                    "bug_filed",
                    f"{label} filed ({priority}): {title}",
                    ts=at,
                    bug_number=number,
                    data={"issue_type": issue_type, "fingerprint": fingerprint},
                )
                outcome, escalated = BugOutcome(number, True, False, False, f"{label} filed"), False
        # Outside the transaction: slow work must not hold the database's write lock.
        bug = self.store.get_bug(number)
        if bug is not None:
            self._mirror(bug)
            if outcome.created:
                self._after_filing(bug, metadata or {})
            elif escalated and bug.priority == "Critical" and self.notifier is not None:
                self.notifier.alert("critical", f"{bug.label} is now Critical: {bug.title}")
        return outcome

    def _open_bug(self, issue_type: str, fingerprint: str) -> BugRow | None:
        try:
            return self.store.open_bug_by_fingerprint(fingerprint)
        except StoreError as exc:
            raise BugDedupError(
                f"cannot deduplicate {issue_type!r} (fingerprint {fingerprint}): {exc}"
            ) from exc

    def _count_again(
        self, bug: BugRow, priority: str, category: str, at: float, delta: int = 1
    ) -> tuple[BugOutcome, bool]:
        """More occurrences: raise the priority if needed (never lower it)."""
        occurrences = bug.occurrences + delta
        new_priority = more_severe(bug.priority, priority)
        crash_bug = _CRASH_CATEGORY in (category, bug.category)
        if crash_bug and occurrences > self.config.critical_crash_count:
            new_priority = "Critical"
        changed = new_priority != bug.priority
        self.store.touch_bug(
            bug.bug_number,
            occurrences_delta=delta,
            last_seen=at,
            priority=new_priority if changed else None,
        )
        if changed:
            self.store.add_event(
                "bug_priority",
                f"{bug.label} escalated {bug.priority} -> {new_priority} "
                f"after {count(occurrences, 'occurrence')}",
                ts=at,
                bug_number=bug.bug_number,
                data={"from": bug.priority, "to": new_priority},
            )
        message = f"{bug.label}: occurrence {occurrences}"
        return BugOutcome(bug.bug_number, False, True, False, message), changed

    def _rate_limit(
        self, issue_type: str, fingerprint: str, title: str, at: float
    ) -> BugOutcome | None:
        """At most one new bug per issue type per ``bug_rate_limit`` seconds."""
        try:
            last = self.store.last_bug_created_ts(issue_type)
        except StoreError as exc:
            raise BugDedupError(f"cannot apply the rate limit for {issue_type!r}: {exc}") from exc
        limit = self.config.bug_rate_limit
        if last is None or at - last >= limit:
            return None
        message = (
            f"not filing {title!r}: {article(issue_type)} bug was filed {seconds_ago(at - last)} "
            f"(one per issue type in {duration(limit)}; next in {duration(limit - (at - last))})"
        )
        try:
            said = self.store.last_event_ts(
                "bug_rate_limited", data_contains=json.dumps({"fingerprint": fingerprint})[1:-1]
            )
        except StoreError:
            said = None  # cannot tell: say it again rather than hide it
        if said is not None and said >= last:
            # Said once for this window: a storm must not flood the timeline with it.
            return BugOutcome(None, False, False, True, message)
        self.store.add_event(
            "bug_rate_limited",
            message,
            ts=at,
            data={"issue_type": issue_type, "fingerprint": fingerprint},
        )
        return BugOutcome(None, False, False, True, message)

    # -- manual actions --------------------------------------------------------
    def file_manual(
        self,
        *,
        title: str,
        priority: str,
        description: str = "",
        assigned_to: str | None = None,
        category: str = "manual",
        related: dict[str, Any] | None = None,
    ) -> BugRow:
        """A bug filed by a person: no deduplication, no rate limit."""
        _check_priority(priority)
        if not title or not title.strip():
            raise ValueError("a bug needs a title")
        related = dict(related or {})
        files = related.get("related_files")
        at = _now()
        with self.store.transaction():
            number = self.store.insert_bug(
                title=title.strip(),
                description=description,
                priority=priority,
                category=category,
                reporter=str(related.get("reporter") or "ohm"),
                assigned_to=assigned_to or self.config.default_assignee,
                reproduction_steps=[str(s) for s in related.get("reproduction_steps") or []],
                root_cause=related.get("root_cause"),
                related_files=[str(f) for f in files] if isinstance(files, list) else [],
                metadata=related,
                fingerprint=None,
                issue_type="manual",
                error_logs=related.get("error_logs"),
                stack_trace=related.get("stack_trace"),
                now=at,
                number_taken=self._ticket_exists,
            )
            self._note_ticket_path(number)
            self.store.add_event(
                "bug_filed",
                f"{format_bug_number(number)} filed by hand ({priority}): {title.strip()}",
                ts=at,
                bug_number=number,
                data={"issue_type": "manual"},
            )
        bug = self._require(number)
        self._mirror(bug)
        self._after_filing(bug, related)
        return bug

    def close(self, n: int) -> BugRow:
        self._require(n)
        at = _now()
        with self.store.transaction():
            self.store.update_bug(n, status="closed", closed_at=at, now=at)
            self.store.add_event("bug_closed", f"{format_bug_number(n)} closed", bug_number=n)
        return self._changed(n)

    def reopen(self, n: int) -> BugRow:
        self._require(n)
        at = _now()
        with self.store.transaction():
            self.store.update_bug(n, status="open", closed_at=None, resolved_at=None, now=at)
            self.store.add_event("bug_reopened", f"{format_bug_number(n)} reopened", bug_number=n)
        return self._changed(n)

    def set_priority(self, n: int, priority: str) -> BugRow:
        _check_priority(priority)
        old = self._require(n)
        with self.store.transaction():
            self.store.update_bug(n, priority=priority)
            self.store.add_event(
                "bug_priority",
                f"{old.label} priority {old.priority} -> {priority}",
                bug_number=n,
                data={"from": old.priority, "to": priority},
            )
        return self._changed(n)

    def _require(self, n: int) -> BugRow:
        bug = self.store.get_bug(n)
        if bug is None:
            raise KeyError(f"unknown bug BUG-{n:03d}")
        return bug

    def _changed(self, n: int) -> BugRow:
        bug = self._require(n)
        self._mirror(bug)
        return bug

    # -- after filing: ticket, hook, alert --------------------------------------
    def _after_filing(self, bug: BugRow, metadata: dict[str, Any]) -> None:
        if self.config.bug_command:
            self._run_hook(bug, metadata)
        if self.notifier is not None:
            level = "critical" if bug.priority == "Critical" else "warning"
            self.notifier.alert(
                level,
                f"{bug.label} filed ({bug.priority}): {bug.title}",
                data={"bug_number": bug.bug_number},
            )

    def _run_hook(self, bug: BugRow, metadata: dict[str, Any]) -> None:
        argv = list(self.config.bug_command or [])
        payload = bug.to_dict()
        payload["metadata"] = metadata
        payload["event"] = "bug_filed"
        result = run_command(argv, payload, timeout=self.config.bug_command_timeout)
        if result.ok:
            return
        output = result.output.strip()[-500:]
        message = f"bug_command for {bug.label} failed: {result.error}"
        log.warning("%s%s", message, f"; output: {output}" if output else "")
        try:
            self.store.add_event(
                "hook_failed",
                message,
                bug_number=bug.bug_number,
                data={
                    "command": argv,
                    "returncode": result.returncode,
                    "timed_out": result.timed_out,
                    "output": output,
                },
            )
        except StoreError:
            log.exception("cannot record the failed hook of %s", bug.label)

    def _ticket_exists(self, n: int) -> bool:
        """A ticket file with this number exists: the number is not free."""
        try:
            path = self.ticket_path(n)
        except ValueError:
            return False
        return path is not None and os.path.lexists(path)

    def _note_ticket_path(self, n: int) -> None:
        # The real tracker's table has a ticket_file_path column; fill it when present,
        # as it does: relative to the orchestrator's root (``tickets/BUG-003.md``).
        path = self.ticket_path(n)
        if path is not None and "ticket_file_path" in self.store.bug_columns:
            root = self.config.root_path.resolve()
            shown = path.relative_to(root) if path.is_relative_to(root) else path
            self.store.update_bug(n, ticket_file_path=str(shown))

    def ticket_path(self, n: int) -> Path | None:
        """``tickets/BUG-003.md``: named by the number only, checked to stay inside."""
        base = self.config.tickets_path
        if base is None:
            return None
        if not isinstance(n, int) or isinstance(n, bool) or n < 0:
            raise ValueError(f"not a bug number: {n!r}")
        root = base.resolve()
        path = (root / f"{format_bug_number(n)}.md").resolve()
        if not path.is_relative_to(root) or path.parent != root:
            raise ValueError(f"ticket path {path} escapes {root}")
        return path

    def _mirror(self, bug: BugRow) -> None:
        """Rewrite the ticket file; a failure is logged and recorded, never raised.

        A ticket that ohm did not write (the real tracker's, with its analysis
        sections) is never replaced: only its Status and Priority lines change.
        """
        try:
            path = self.ticket_path(bug.bug_number)
            if path is None:
                return
            path.parent.mkdir(parents=True, exist_ok=True)
            text = render_ticket(bug)
            if not path.exists():
                _write_atomic(path, text, exclusive=True)  # never over a ticket just made
                return
            current = path.read_text(encoding="utf-8", errors="replace")
            if not current.rstrip().endswith(OHM_MARKER):
                text = patch_ticket_header(current, bug)
                if text == current:
                    return
            _write_atomic(path, text)
        except (OSError, ValueError) as exc:
            message = f"cannot write the ticket of {bug.label}: {exc}"
            log.warning("%s", message)
            try:
                self.store.add_event("ticket_failed", message, bug_number=bug.bug_number)
            except StoreError:
                log.exception("cannot record the failed ticket of %s", bug.label)


class _Guard:
    """``store.transaction()`` whose failure to begin is a deduplication failure."""

    def __init__(self, store: Store, fingerprint: str) -> None:
        self._store = store
        self._fingerprint = fingerprint
        self._cm: Any = None

    def __enter__(self) -> None:
        try:
            self._cm = self._store.transaction()
            self._cm.__enter__()
        except StoreError as exc:
            raise BugDedupError(
                f"cannot deduplicate (fingerprint {self._fingerprint}): {exc}"
            ) from exc

    def __exit__(self, *exc: Any) -> bool:
        return bool(self._cm.__exit__(*exc))


# -- tickets --------------------------------------------------------------------


def _one_line(text: str) -> str:
    return " ".join(sanitize(text).split())


def fenced(text: str, lang: str = "") -> str:
    """A fenced block that ``text`` cannot close: the fence is longer than any run inside."""
    body = sanitize(text).rstrip("\n")
    longest = max((len(m) for m in _BACKTICKS.findall(body)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{lang}\n{body}\n{fence}"


def render_ticket(bug: BugRow) -> str:
    """The ticket in the real tracker's layout (header lines first, exactly)."""
    created = iso_local_naive(bug.created_at) if bug.created_at is not None else ""
    lines = [
        f"# {bug.label}: {_one_line(bug.title)}",
        "",
        f"**Status**: {status_label(bug.status)}",
        f"**Priority**: {_one_line(bug.priority)}",
        f"**Created**: {created}",
        f"**Reporter**: {_one_line(bug.reporter)}",
        f"**Assigned**: {_one_line(bug.assigned_to or '')}",
    ]
    if bug.category:
        lines.append(f"**Category**: {_one_line(bug.category)}")
    lines += [
        "",
        "## Description",
        "",
        fenced(bug.description or ""),
        "",
    ]
    if bug.root_cause:
        lines += ["## Root Cause", "", fenced(bug.root_cause), ""]
    if bug.reproduction_steps:
        lines += ["## Reproduction Steps", ""]
        lines += [f"{i}. {_one_line(step)}" for i, step in enumerate(bug.reproduction_steps, 1)]
        lines.append("")
    if bug.related_files:
        lines += ["## Related Files", "", fenced("\n".join(bug.related_files)), ""]
    if bug.stack_trace:
        lines += ["## Stack Trace", "", fenced(bug.stack_trace), ""]
    if bug.error_logs:
        lines += ["## Error Logs", "", fenced(bug.error_logs), ""]
    seen = iso_local_naive(bug.last_seen) if bug.last_seen is not None else "unknown"
    lines += [
        "## Occurrences",
        "",
        f"- Count: {bug.occurrences}",
        f"- Last seen: {seen}",
        f"- Fingerprint: {_one_line(bug.fingerprint or 'none')}",
        "",
        OHM_MARKER,
        "",
    ]
    return "\n".join(lines)


def status_label(status: str) -> str:
    """``in_progress`` -> ``🟡 In Progress``: the tracker's status line, emoji first."""
    word = _one_line(status)
    return f"{STATUS_EMOJI.get(word, STATUS_EMOJI['open'])} {word.replace('_', ' ').title()}"


def patch_ticket_header(text: str, bug: BugRow) -> str:
    """Update Status and Priority in a ticket someone else wrote, keeping the rest."""
    text = _STATUS_LINE.sub(lambda _: f"**Status**: {status_label(bug.status)}", text, count=1)
    return _PRIORITY_LINE.sub(lambda _: f"**Priority**: {_one_line(bug.priority)}", text, count=1)


def _write_atomic(path: Path, text: str, *, exclusive: bool = False) -> None:
    """Temp file + rename; ``exclusive``: a hard link that fails if ``path`` exists
    (``FileExistsError``), so a ticket someone else just wrote is never replaced."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        if exclusive:
            os.link(tmp, path)
            os.unlink(tmp)
        else:
            os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
