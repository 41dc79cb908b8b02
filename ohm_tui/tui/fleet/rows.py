"""Rows of the fleet tables, built from a ``FleetSnapshot`` (host column first).

Data shaping lives here, apart from the widgets: every row key is ``host|id`` so
the same agent key or bug number on two hosts never collide.
"""

from __future__ import annotations

from rich.text import Text
from textual.app import App

from ohm_tui.engine.model import AgentView, BugRow, CrashRow
from ohm_tui.fleet.snapshot import FleetSnapshot, HostStatus, HostView
from ohm_tui.tui import text
from ohm_tui.tui.keyed_table import Row
from ohm_tui.tui.tones import PRIORITY_TONES, STATUS_TONES, tone

AGENT_COLUMNS = [
    ("Host", "host"),
    ("PID", "pid"),
    ("Type", "type"),
    ("Task", "task"),
    ("Status", "status"),
    ("Uptime", "uptime"),
    ("Last log line", "last"),
]
CRASH_COLUMNS = [
    ("Host", "host"),
    ("When", "when"),
    ("Agent", "agent"),
    ("Task", "task"),
    ("Error", "error"),
]
BUG_COLUMNS = [
    ("Host", "host"),
    ("Bug", "bug"),
    ("Priority", "priority"),
    ("Title", "title"),
    ("Seen", "seen"),
]
PRIORITY_RANK = {"Critical": 0, "High": 1, "Medium": 2, "Low": 3}


def row_key(host: str, ident: object) -> str:
    return f"{host}|{ident}"


def matches(needle: str, *values: object) -> bool:
    """The ``/`` filter: a case-insensitive substring of the host, type, task or status."""
    if not needle:
        return True
    n = needle.lower()
    return any(n in str(v).lower() for v in values if v is not None)


def agent_status_text(app: App[object], view: HostView, agent: AgentView, now: float) -> Text:
    """An unreachable host's agents are unknown, never crashed: their last state is a guess."""
    if view.status is HostStatus.UNREACHABLE:
        return Text(f"unknown (host unreachable; was {agent.status})", style="dim")
    return Text(text.agent_status(agent, now), style=tone(app, STATUS_TONES.get(agent.status, "")))


def agent_rows(
    app: App[object], snap: FleetSnapshot, needle: str, now: float
) -> tuple[list[Row], dict[str, tuple[HostView, AgentView]]]:
    rows: list[Row] = []
    index: dict[str, tuple[HostView, AgentView]] = {}
    for view in snap.hosts:
        name = view.host.name
        for a in view.agents:
            shown = "unknown" if view.status is HostStatus.UNREACHABLE else a.status
            if not matches(needle, name, a.agent_type, a.task_id, shown):
                continue
            key = row_key(name, a.key)
            index[key] = (view, a)
            rows.append(
                (
                    key,
                    [
                        text.literal(name),
                        Text(str(a.pid)),
                        text.literal(a.agent_type),
                        text.literal(a.task_id or "-"),
                        agent_status_text(app, view, a, now),
                        Text(text.duration(text.agent_uptime(a, now))),
                        text.literal(text.log_message(a.last_log_line or ""), max_len=60),
                    ],
                )
            )
    return rows, index


def crash_rows(
    snap: FleetSnapshot, needle: str, now: float
) -> tuple[list[Row], dict[str, tuple[HostView, CrashRow]]]:
    found = [
        (view, c)
        for view in snap.hosts
        for c in view.crashes
        if matches(needle, view.host.name, c.agent_type, c.task_id, "crashed")
    ]
    found.sort(key=lambda vc: -vc[1].crashed_at)
    rows: list[Row] = []
    index: dict[str, tuple[HostView, CrashRow]] = {}
    for view, c in found:
        key = row_key(view.host.name, c.crash_id)
        index[key] = (view, c)
        error = c.root_cause or c.error_type or f"exit {c.exit_code}"
        rows.append(
            (
                key,
                [
                    text.literal(view.host.name),
                    Text(text.ago(c.crashed_at, now)),
                    text.literal(f"{c.agent_type} [{c.agent_pid}]"),
                    text.literal(c.task_id or "-"),
                    text.literal(error, max_len=70),
                ],
            )
        )
    return rows, index


def bug_rows(
    app: App[object], snap: FleetSnapshot, needle: str
) -> tuple[list[Row], dict[str, tuple[HostView, BugRow]]]:
    found = [
        (view, b)
        for view in snap.hosts
        for b in view.bugs
        if matches(needle, view.host.name, b.issue_type, b.title, b.status)
    ]
    found.sort(key=lambda vb: (PRIORITY_RANK.get(vb[1].priority, 9), -(vb[1].last_seen or 0.0)))
    rows: list[Row] = []
    index: dict[str, tuple[HostView, BugRow]] = {}
    for view, b in found:
        key = row_key(view.host.name, b.bug_number)
        index[key] = (view, b)
        rows.append(
            (
                key,
                [
                    text.literal(view.host.name),
                    Text(b.label),
                    Text(b.priority, style=tone(app, PRIORITY_TONES.get(b.priority, ""))),
                    text.literal(b.title, max_len=70),
                    Text(str(b.occurrences)),
                ],
            )
        )
    return rows, index
