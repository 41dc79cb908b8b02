"""Listings: ``ohm crashes``, ``ohm events``, ``ohm agents``."""

from __future__ import annotations

import argparse

from ohm_tui.cli import output as out
from ohm_tui.cli.context import open_reader
from ohm_tui.cli.table import render_table
from ohm_tui.engine import timeutil
from ohm_tui.engine.models import AgentView, CrashRow, ended_text
from ohm_tui.engine.sources.invocations import format_usd


def crash_action(row: CrashRow) -> str:
    """What was done about a crash, with its bug when one was filed."""
    action = row.action_taken or ("respawned" if row.respawned else "")
    if row.bug_number is not None:
        action = (
            f"{action}, {out.bug_label(row.bug_number)}"
            if action
            else out.bug_label(row.bug_number)
        )
    return out.clean(action)


TABLE_LIMIT = 200  # a terminal shows a few screens; scripts use --json


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
        ["TIME", "AGENT", "TASK", "ERROR", "MESSAGE", "ROOT CAUSE", "ACTION"],
        [
            [
                out.ago(r.crashed_at, at),
                out.agent_label(r.agent_type, r.agent_pid),
                out.clean(r.task_id),
                out.clean(
                    r.error_type or (f"exit {r.exit_code}" if r.exit_code is not None else None)
                ),
                out.clean(r.error_message),
                out.clean(r.root_cause),
                crash_action(r),
            ]
            for r in rows
        ],
        fixed=(0,),
    )
    out.emit(table)
    if total > len(rows):
        out.emit(
            f"({len(rows)} newest of {total} crashes in the last {args.last.text}; "
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
            ["TIME", "EVENT", "AGENT", "TASK", "MESSAGE"],
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
            fixed=(0,),
        )
    )
    return 0


_LIVE = frozenset({"running", "stalled", "zombie"})


def agent_status(agent: AgentView, at: float) -> str:
    if agent.status == "respawning" and agent.next_respawn_at is not None:
        wait = max(0.0, agent.next_respawn_at - at)
        return f"respawning in {wait:.0f}s"
    label = agent.status.replace("_", " ")
    ended = ended_text(agent.exit_code) if agent.status not in _LIVE else None
    return f"{label} ({ended})" if ended else label


def uptime(agent: AgentView, at: float) -> str:
    """How long a live agent has run; a dead one has no uptime."""
    if agent.started_at is None or agent.status not in _LIVE:
        return out.DASH
    return out.duration(at - agent.started_at)


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
    spend = ["COST", "TOKENS"] if costed else []
    out.emit(
        render_table(
            [
                "PID",
                "TYPE",
                "TASK",
                "STATUS",
                "UPTIME",
                "CPU",
                "MEMORY",
                "RESPAWNS",
                *spend,
                "LAST LOG LINE",
            ],
            [
                [
                    str(a.pid),
                    out.clean(a.agent_type),
                    out.clean(a.task_id),
                    agent_status(a, at),
                    uptime(a, at),
                    out.percent(a.cpu_percent),
                    out.size(a.rss_bytes),
                    f"{a.respawns}/{a.max_respawns}",
                    *(_spend(a) if costed else []),
                    out.clean(a.reason or a.last_log_line),  # why it is not running, if known
                ]
                for a in agents
            ],
            fixed=(0, 3, 5, 6, 7, 8, 9) if costed else (0, 3, 5, 6, 7),
        )
    )
    return 0


def _spend(agent: AgentView) -> list[str]:
    if agent.cost_usd is None:
        return [out.DASH, out.DASH]
    tokens = (agent.input_tokens or 0) + (agent.output_tokens or 0)
    return [format_usd(agent.cost_usd), f"{tokens:,}"]
