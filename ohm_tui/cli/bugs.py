"""``ohm bugs`` and ``ohm bug show|file|close|reopen|priority``."""

from __future__ import annotations

import argparse

from ohm_tui.cli import output as out
from ohm_tui.cli.context import open_monitor, open_reader
from ohm_tui.cli.table import Column, render_table
from ohm_tui.engine import timeutil
from ohm_tui.engine.model import BugRow

# At a narrow terminal the highest priority numbers go first; the title is last.
BUG_COLUMNS = [
    Column("BUG"),
    Column("PRIORITY"),
    Column("STATUS", priority=1),
    Column("SEEN", priority=3),
    Column("LAST SEEN", priority=2),
    Column("ASSIGNED", priority=4, min_width=24),
    Column("TITLE", min_width=40, long=True),
]


def cmd_bugs(args: argparse.Namespace) -> int:
    with open_reader(args) as monitor:
        bugs = monitor.bugs(args.status)
    if args.json:
        out.emit_json([b.to_dict() for b in bugs])
        return 0
    if not bugs:
        out.emit("No open bugs." if args.status == "open" else "No bugs.")
        return 0
    at = timeutil.now()
    out.emit(
        render_table(
            BUG_COLUMNS,
            [
                [
                    b.label,
                    b.priority,
                    b.status,
                    f"{b.occurrences}x",
                    out.ago(b.last_seen or b.updated_at or b.created_at, at),
                    out.clean(b.assigned_to),
                    out.clean(b.title),
                ]
                for b in bugs
            ],
            wide=args.wide,
        )
    )
    return 0


def render_bug(bug: BugRow) -> str:
    """The whole bug report, in the seed's bug report order."""
    at = timeutil.now()
    lines = [
        f"{bug.label}: {out.clean(bug.title)}",
        f"  Status:      {bug.status}",
        f"  Priority:    {bug.priority}",
        f"  Category:    {out.clean(bug.category)}",
        f"  Reporter:    {out.clean(bug.reporter)}",
        f"  Assigned:    {out.clean(bug.assigned_to)}",
        f"  Created:     {out.ago(bug.created_at, at)}",
        f"  Updated:     {out.ago(bug.updated_at, at)}",
        f"  Occurrences: {bug.occurrences} (last seen {out.ago(bug.last_seen, at)})",
    ]
    if bug.issue_type:
        lines.append(f"  Issue type:  {out.clean(bug.issue_type)}")
    if bug.fingerprint:
        lines.append(f"  Fingerprint: {out.clean(bug.fingerprint)}")
    lines.append(f"  Root cause:  {out.clean(bug.root_cause)}")
    if bug.related_files:
        lines.append("  Related files:")
        lines.extend(f"    {out.clean(f)}" for f in bug.related_files)
    lines += ["", "Description:", _indent(out.clean_block(bug.description))]
    if bug.reproduction_steps:
        lines += ["", "Reproduction steps:"]
        lines.extend(f"  {i}. {out.clean(s)}" for i, s in enumerate(bug.reproduction_steps, 1))
    if bug.stack_trace:
        lines += ["", "Stack trace:", _indent(out.clean_block(bug.stack_trace))]
    if bug.error_logs:
        lines += ["", "Error logs:", _indent(out.clean_block(bug.error_logs))]
    return "\n".join(lines)


def _indent(block: str) -> str:
    return "\n".join("  " + line for line in block.splitlines())


def _show_one(bug: BugRow, args: argparse.Namespace, verb: str | None = None) -> int:
    if getattr(args, "json", False):
        out.emit_json(bug.to_dict())
    elif verb is None:
        out.emit(render_bug(bug))
    else:
        out.emit(f"{bug.label} {verb}: {out.clean(bug.title)} ({bug.priority}, {bug.status})")
    return 0


def cmd_bug_show(args: argparse.Namespace) -> int:
    with open_reader(args) as monitor:
        return _show_one(monitor.bug(args.bug), args)


def cmd_bug_file(args: argparse.Namespace) -> int:
    with open_monitor(args) as monitor:
        bug = monitor.file_bug(
            args.title,
            args.priority,
            args.description or "",
            assigned_to=args.assigned_to,
        )
    if args.json:
        out.emit_json(bug.to_dict())
    else:
        out.emit(
            f"Filed {bug.label}: {out.clean(bug.title)} "
            f"({bug.priority}, assigned to {out.clean(bug.assigned_to)})"
        )
    return 0


def cmd_bug_close(args: argparse.Namespace) -> int:
    with open_monitor(args) as monitor:
        return _show_one(monitor.close_bug(args.bug), args, "closed")


def cmd_bug_reopen(args: argparse.Namespace) -> int:
    with open_monitor(args) as monitor:
        return _show_one(monitor.reopen_bug(args.bug), args, "reopened")


def cmd_bug_priority(args: argparse.Namespace) -> int:
    with open_monitor(args) as monitor:
        bug = monitor.set_bug_priority(args.bug, args.priority)
        return _show_one(bug, args, f"priority set to {bug.priority}")
