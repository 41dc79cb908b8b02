"""``ohm ack`` and ``ohm unack``: say "I know" about an issue, and take it back.

An ack silences an issue's alerts and takes it out of the status until it
changes (a new crash, a worse severity, a bigger count), goes away, or the
chosen time passes. Acknowledged issues are still listed, marked.
"""

from __future__ import annotations

import argparse

from ohm_tui.cli import output as out
from ohm_tui.cli.context import EXIT_OK, open_monitor
from ohm_tui.engine import timeutil
from ohm_tui.engine.detect import headline
from ohm_tui.engine.model import Ack, Issue


def ack_text(ack: Ack, at: float | None = None) -> str:
    """``acked by alice until 2026-11-29T18:14:08+00:00 (59 minutes left)``, or
    ``acked by alice until it changes``."""
    if ack.until is None:
        span = "until it changes"
    else:
        left = ack.until - (timeutil.now() if at is None else at)
        span = f"until {out.local_iso(ack.until)} ({out.duration(max(0.0, left))} left)"
    return f"acked by {out.clean(ack.by)} {span}"


def _issue_line(issue: Issue) -> str:
    line = f"  {issue.issue_id}  [{issue.severity}] {out.clean(headline.words(issue))}"
    if issue.ack is not None:
        line += f"  ({ack_text(issue.ack)})"
    return line


def _ack_line(ack: Ack, at: float) -> str:
    line = f"  #{ack.ack_id} {ack.issue_id}: {ack_text(ack, at)}, {out.ago(ack.acked_at, at)}"
    if ack.ended_at is not None:
        line += f"; ended {out.ago(ack.ended_at, at)}: {out.clean(ack.end_reason)}"
    return line


def cmd_ack(args: argparse.Namespace) -> int:
    with open_monitor(args) as monitor:
        if args.list or args.all:
            acks = monitor.list_acks(include_ended=args.all)
            if args.json:
                out.emit_json([a.to_dict() for a in acks])
            elif not acks:
                out.emit("No acknowledgements." if args.all else "No open acknowledgements.")
            else:
                at = timeutil.now()
                out.emit("\n".join(_ack_line(a, at) for a in acks))
            return EXIT_OK
        if args.issue is None:  # what could be acknowledged, and what is
            report = monitor.check()
            if args.json:
                out.emit_json([i.to_dict() for i in report.issues])
            elif not report.issues:
                out.emit("No issues now: nothing to acknowledge.")
            else:
                out.emit("Issues now (acknowledge one with: ohm ack ISSUE [--for 1h]):")
                out.emit("\n".join(_issue_line(i) for i in report.issues))
            return EXIT_OK
        seconds = args.for_.seconds if args.for_ is not None else None
        ack = monitor.acknowledge(args.issue, by=args.by, for_seconds=seconds)
        if args.json:
            out.emit_json(ack.to_dict())
        else:
            out.emit(
                f"Acknowledged {ack.issue_id} ({out.clean(ack.error_at_ack)}), {ack_text(ack)}."
            )
        return EXIT_OK


def cmd_unack(args: argparse.Namespace) -> int:
    with open_monitor(args) as monitor:
        ended = monitor.unacknowledge(args.issue, by=args.by)
        if args.json:
            out.emit_json([a.to_dict() for a in ended])
        else:
            out.emit("\n".join(f"Took back the acknowledgement of {a.issue_id}." for a in ended))
        return EXIT_OK
