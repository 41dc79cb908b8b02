"""The help screen's contents, read from the screens' own ``BINDINGS``.

Reading the bindings (rather than writing a second list) keeps the help, the
footer, the command palette and the README table in step.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from textual.app import App
from textual.binding import Binding, BindingType

from ohm_tui.tui.dashboard import DashboardScreen
from ohm_tui.tui.screens.agent_detail import AgentDetailScreen
from ohm_tui.tui.screens.bug_detail import BugDetailScreen
from ohm_tui.tui.screens.bug_form import BugFormScreen
from ohm_tui.tui.screens.confirm import ConfirmScreen
from ohm_tui.tui.screens.crash_detail import CrashDetailScreen
from ohm_tui.tui.screens.help import HelpRow, HelpSection
from ohm_tui.tui.screens.issues import IssuesScreen
from ohm_tui.tui.state import ConsoleState
from ohm_tui.tui.timeline_panel import CrashTable

BUILTIN_ROWS: list[HelpRow] = [
    ("tab / ⇧tab", "Next / previous panel", "Move the focus between panels"),
    ("↑↓ pgup pgdn", "Move", "Move the cursor in the focused table"),
    ("home g / end G", "First / last row", "In the crash timeline, end / G also follows"),
    ("ctrl+p", "Commands", "Command palette: every action by name"),
]


def rows(app: App[Any], bindings: Iterable[BindingType]) -> list[HelpRow]:
    out: list[HelpRow] = []
    for binding in bindings:
        if not isinstance(binding, Binding) or not binding.description:
            continue
        keys = " / ".join(
            app.get_key_display(Binding(key.strip(), binding.action))
            for key in binding.key.split(",")
        )
        out.append((keys, binding.description, binding.tooltip))
    return out


def watching(state: ConsoleState) -> list[HelpRow]:
    """What this console watches: the state dir (a demo's is a temp path nobody typed)."""
    data_dir = state.monitor.config.data_dir
    out: list[HelpRow] = []
    if data_dir:
        out.append(("state dir", str(Path(data_dir).expanduser().absolute()), ""))
    root = state.demo_root
    if root:
        what = f"a temporary root {root}: data/ and tickets/"
        out.append(("demo", what, "removed on quit unless --keep"))
    return out


def help_sections(app: App[Any], state: ConsoleState) -> list[HelpSection]:
    """Every binding of every screen, grouped by screen (keys as ``app`` displays them)."""
    overview: list[HelpRow] = []
    for row in rows(app, DashboardScreen.BINDINGS) + rows(app, app.BINDINGS) + BUILTIN_ROWS:
        if all(row[:2] != seen[:2] for seen in overview):  # ``?`` is bound on both
            overview.append(row)
    where = watching(state)
    return [
        *([("Watching", where)] if where else []),
        ("Overview", overview),
        ("Crash timeline", rows(app, CrashTable.BINDINGS)),
        ("Issues", rows(app, IssuesScreen.BINDINGS)),
        ("Agent, log", rows(app, AgentDetailScreen.BINDINGS)),
        ("Crash", rows(app, CrashDetailScreen.BINDINGS)),
        ("Bug", rows(app, BugDetailScreen.BINDINGS)),
        ("Bug form", rows(app, BugFormScreen.BINDINGS)),
        ("Confirm", rows(app, ConfirmScreen.BINDINGS)),
    ]
