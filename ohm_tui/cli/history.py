"""Listings: ``ohm crashes``, ``ohm events``, ``ohm agents``."""

from __future__ import annotations

import argparse

from ohm_tui.cli import output as out
from ohm_tui.cli.context import open_reader
from ohm_tui.cli.table import Column, render_table
from ohm_tui.engine import fmt, timeutil
from ohm_tui.engine.model import AgentView, CrashRow
from ohm_tui.engine.sources.invocations import format_usd


def crash_action(row: CrashRow) -> str:
    """What was done about a crash, with its bug when one was filed (as the console says)."""
    return out.clean(fmt.crash_action(row))


TABLE_LIMIT = 200  # a terminal shows a few screens; scripts use --json

# At a narrow terminal the highest priority numbers go first; long text is last.
CRASH_COLUMNS = [
    Column("TIME"),
    Column("AGENT", min_width=32),
    Column("TASK", priority=1, min_width=24),
    Column("ERROR", min_width=32),
    Column("ACTION", priority=2, min_width=24),
    Column("MESSAGE", min_width=30, long=True),
    Column("ROOT CAUSE", priority=3, min_width=30, long=True),
]
EVENT_COLUMNS = [
    Column("TIME"),
    Column("EVENT"),
    Column("AGENT", priority=1, min_width=32),
    Column("TASK", priority=2, min_width=24),
    Column("MESSAGE", min_width=30, long=True),
]
AGENT_COLUMNS = [
    Column("PID"),
    Column("TYPE", min_width=24),
    Column("TASK", priority=1, min_width=24),
    Column("STATUS"),
    Column("UPTIME", priority=3),
    Column("CPU", priority=4),
    Column("MEMORY", priority=5),
    Column("RESPAWNS", priority=2),
    Column("LAST LOG LINE", min_width=24, long=True),
]
# Where a claude_invocations.db says what each task spent (era 3), before the log line.
SPEND_COLUMNS = [Column("COST", priority=2), Column("TOKENS", priority=3)]


def cmd_crashes(args: argparse.Namespace) -> int:
    since = timeutil.now() - args.last.seconds
    limit = args.limit if args.limit is not None else (None if args.json else TABLE_LIMIT)
    limit = limit or None  # 0 means all
    with open_reader(args) as monitor:
        rows = monitor.crashes(since, agent_type=args.agent, task_id=args.task, limit=limit)
        total = len(rows)
        if limit is not None and total == limit:
            total = monitor.store.count_crashes(since, agent_type=args.agent, task_id=args.task)
    if args.json:
        out.emit_json([r.to_dict() for r in rows])
        return 0
    if not rows:
        out.emit(f"No crashes in the last {args.last.text}.")
        return 0
    at = timeutil.now()
    table = render_table(
        CRASH_COLUMNS,
        [
            [
                out.ago(r.crashed_at, at),
                out.agent_label(r.agent_type, r.agent_pid),
                out.clean(r.task_id),
                out.clean(
                    r.error_type or (f"exit {r.exit_code}" if r.exit_code is not None else None)
                ),
                crash_action(r),
                out.clean(r.error_message),
                out.clean(r.root_cause),
            ]
            for r in rows
        ],
        wide=args.wide,
    )
    out.emit(table)
    if total > len(rows):
        out.emit(
            f"({len(rows)} newest of {out.count(total, 'crash')} in the last {args.last.text}; "
            "--limit 0 shows all)"
        )
    return 0


def cmd_events(args: argparse.Namespace) -> int:
    since = timeutil.now() - args.last.seconds
    with open_reader(args) as monitor:
        events = monitor.events(since, limit=args.limit)
    if args.json:
        out.emit_json([e.to_dict() for e in events])
        return 0
    if not events:
        out.emit(f"No events in the last {args.last.text}.")
        return 0
    at = timeutil.now()
    out.emit(
        render_table(
            EVENT_COLUMNS,
            [
                [
                    out.ago(e.ts, at),
                    out.clean(e.kind),
                    out.agent_label(e.agent_type, e.agent_pid),
                    out.clean(e.task_id),
                    out.clean(e.message),
                ]
                for e in events
            ],
            wide=args.wide,
        )
    )
    return 0


def agent_status(agent: AgentView, at: float) -> str:
    """The status the console shows too (one helper serves both faces)."""
    return fmt.agent_status(agent, at)


def uptime(agent: AgentView, at: float) -> str:
    """How long a live agent has run; a dead one has no uptime."""
    return out.duration(fmt.agent_uptime(agent, at))


def cmd_agents(args: argparse.Namespace) -> int:
    with open_reader(args) as monitor:
        agents = monitor.snapshot(record=False).agents  # a listing writes nothing
    if args.json:
        out.emit_json([a.to_dict() for a in agents])
        return 0
    if not agents:
        out.emit("No agents.")
        return 0
    at = timeutil.now()
    # Cost and tokens (of the agent's task, last 24 h) only where they are known:
    # session agents with a claude_invocations.db.
    costed = any(a.cost_usd is not None for a in agents)
    out.emit(
        render_table(
            AGENT_COLUMNS[:-1] + (SPEND_COLUMNS if costed else []) + AGENT_COLUMNS[-1:],
            [
                [
                    fmt.agent_pid(a),
                    out.clean(a.agent_type),
                    out.clean(a.task_id),
                    agent_status(a, at),
                    uptime(a, at),
                    out.percent(a.cpu_percent),
                    out.size(a.rss_bytes or None),
                    f"{a.respawns}/{a.max_respawns}",
                    *(_spend(a) if costed else []),
                    # Why it is not running (its respawn could not start), else its last line.
                    out.clean(a.reason or fmt.log_message(out.clean(a.last_log_line))),
                ]
                for a in agents
            ],
            wide=args.wide,
        )
    )
    return 0


def _spend(agent: AgentView) -> list[str]:
    if agent.cost_usd is None:
        return [out.DASH, out.DASH]
    tokens = (agent.input_tokens or 0) + (agent.output_tokens or 0)
    return [format_usd(agent.cost_usd), f"{tokens:,}"]
