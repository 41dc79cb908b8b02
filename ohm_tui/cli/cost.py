"""``ohm cost``: what session agents spent, by agent type, task or hour.

Reads ``claude_invocations.db`` read-only with bounded SQL (``GROUP BY`` inside
the window); it runs no health check and starts nothing.
"""

from __future__ import annotations

import argparse
from datetime import datetime

from ohm_tui.cli import output as out
from ohm_tui.cli.context import EXIT_FAILED, CliError, build_config, require_data_dir
from ohm_tui.cli.table import Column, render_table
from ohm_tui.engine import timeutil
from ohm_tui.engine.model import CostRow
from ohm_tui.engine.sources.invocations import (
    InvocationsError,
    format_usd,
    invocations_path,
    read_invocations,
    total,
)

HEADS = {"type": "TYPE", "task": "TASK", "hour": "HOUR"}


def _key_text(row: CostRow, by: str, at: float) -> str:
    if row.key is None:
        return "(unknown)"
    if by == "hour" and isinstance(row.key, float):
        start = datetime.fromtimestamp(row.key).strftime("%Y-%m-%d %H:%M")
        return f"{start} ({out.ago(row.key, at)})"
    return out.clean(row.key)


def _cells(row: CostRow, key: str) -> list[str]:
    return [
        key,
        f"{row.calls:,}",
        f"{row.errors:,}",
        f"{row.input_tokens:,}",
        f"{row.output_tokens:,}",
        f"{row.tokens:,}",
        format_usd(row.cost_usd),
        out.duration(row.duration_ms / 1000.0) if row.calls else out.DASH,
    ]


def cmd_cost(args: argparse.Namespace) -> int:
    cfg = build_config(args)
    require_data_dir(cfg)
    path = invocations_path(cfg.data_dir)
    now = timeutil.now()
    since = now - args.last.seconds
    budget = cfg.cost_budget_per_hour
    doc: dict[str, object] = {
        "database": str(path),
        "by": args.by,
        "last": args.last.text,
        "since": since,
        "until": now,
        "budget_per_hour": budget,
        "problem": None,
    }
    try:
        rows = read_invocations(
            path, since, until_epoch=now, by=args.by, lifecycle_db=cfg.database_path
        )
        hour = total(read_invocations(path, now - 3600.0, until_epoch=now, by="type"))
    except InvocationsError as exc:
        if exc.kind != "missing":
            raise CliError(str(exc), EXIT_FAILED) from None
        message = (
            f"no claude_invocations.db in {cfg.data_dir}: cost and tokens are recorded "
            "only by session agents (the orchestrator's era 3)"
        )
        if args.json:
            out.emit_json({**doc, "rows": [], "total": None, "problem": message})
        else:
            out.emit(f"No cost figures: {message}.")
        return 0
    whole = total(rows)
    if args.json:
        out.emit_json(
            {
                **doc,
                "rows": [r.to_dict() for r in rows],
                "total": whole.to_dict(),
                "last_hour": hour.to_dict(),
                "over_budget": budget is not None and hour.cost_usd > budget,
            }
        )
        return 0
    if not rows:
        out.emit(f"No Claude calls in the last {args.last.text}.")
        return 0
    table = render_table(
        [
            Column(HEADS[args.by], min_width=12),
            Column("CALLS"),
            Column("ERRORS", priority=3),
            Column("INPUT", priority=4),
            Column("OUTPUT", priority=4),
            Column("TOKENS"),
            Column("COST"),
            Column("CLAUDE TIME", priority=2),
        ],
        [_cells(r, _key_text(r, args.by, now)) for r in rows] + [_cells(whole, "total")],
    )
    out.emit(table)
    footer = f"last hour: {format_usd(hour.cost_usd)}"
    if budget is not None:
        state = "OVER" if hour.cost_usd > budget else "within"
        footer += f" ({state} the budget of {format_usd(budget)}/h)"
    out.emit(footer)
    return 0
