"""The "file a bug by hand" form, prefilled from the selected crash or agent."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select, TextArea

from ohm_tui.engine.config import PRIORITIES, Config
from ohm_tui.engine.model import AgentView, CrashRow, is_process_id
from ohm_tui.tui import text


@dataclass
class BugDraft:
    """What the form collects; ``related`` goes to ``monitor.file_bug(related=...)``."""

    title: str = ""
    priority: str = "Medium"
    description: str = ""
    assigned_to: str = ""
    related: dict[str, Any] = field(default_factory=dict)


def _who(agent_type: str, pid: int, *, session: bool = False) -> str:
    """``Agent architect (PID 4242)``; a session (era 3) has a thread id, no PID."""
    kind = text.clean(agent_type)
    if session or (pid and not is_process_id(pid)):
        return f"Session {kind}"
    return f"Agent {kind} (PID {pid})"


def draft_from_crash(crash: CrashRow, config: Config) -> BugDraft:
    """A bug about one recorded crash: its error as title, its trace in the description."""
    error = text.clean(crash.error_type or f"exit code {crash.exit_code}")
    message = text.one_line(text.clean(crash.error_message or ""), 80)
    title = f"{text.clean(crash.agent_type)} crashes with {error}"
    if message:
        title += f": {message}"
    lines = [
        f"{_who(crash.agent_type, crash.agent_pid)} on task "
        f"{text.clean(crash.task_id or '-')} crashed.",
    ]
    if crash.command_text:
        lines.append(f"Command: {text.clean(crash.command_text)}")
    if crash.root_cause:
        lines.append(f"Root cause: {text.clean(crash.root_cause)}")
    if crash.stack_trace:
        lines += ["", text.clean(crash.stack_trace)]
    priority = config.bug_priority_mapping.get(crash.error_type or "", "Medium")
    related: dict[str, Any] = {
        "crash_id": crash.crash_id,
        "agent_key": crash.agent_key,
        "agent_type": crash.agent_type,
        "task_id": crash.task_id,
        "fingerprint": crash.fingerprint,
        "related_files": list(crash.related_files),
        "root_cause": crash.root_cause,
        "stack_trace": crash.stack_trace,
        "error_logs": crash.log_excerpt,
    }
    return BugDraft(
        title=title,
        priority=priority if priority in PRIORITIES else "Medium",
        description="\n".join(lines),
        assigned_to=config.default_assignee,
        related={k: v for k, v in related.items() if v not in (None, [], "")},
    )


def draft_from_agent(agent: AgentView, config: Config) -> BugDraft:
    """A bug about one agent run, e.g. a stalled or looping one."""
    kind = text.clean(agent.agent_type)
    status = agent.status.replace("_", " ")
    session = agent.source == "session"
    lines = [
        f"{_who(agent.agent_type, agent.pid, session=session)} on task "
        f"{text.clean(agent.task_id or '-')} is {status}.",
        *([] if session else [f"Respawns: {agent.respawns}/{agent.max_respawns}."]),
        f"Command: {text.clean(agent.command_text)}",
    ]
    if agent.last_log_line:
        lines.append(f"Last log line: {text.clean(agent.last_log_line)}")
    related: dict[str, Any] = {
        "agent_key": agent.key,
        "agent_type": agent.agent_type,
        "task_id": agent.task_id,
    }
    return BugDraft(
        title=f"{kind} agent {status} on task {text.clean(agent.task_id or '-')}",
        priority="Medium",
        description="\n".join(lines),
        assigned_to=config.default_assignee,
        related={k: v for k, v in related.items() if v is not None},
    )


class BugFormScreen(ModalScreen[BugDraft | None]):
    """Title, priority, description and assignee; ``ctrl+s`` files, ``esc`` cancels."""

    BINDINGS = [
        Binding("ctrl+s", "submit", "File bug", id="bug_form.submit", tooltip="File this bug"),
        Binding("escape", "cancel", "Cancel", id="bug_form.cancel", tooltip="Close, file nothing"),
    ]

    def __init__(self, draft: BugDraft) -> None:
        super().__init__(classes="dialog-screen")
        self.draft = draft

    def compose(self) -> ComposeResult:
        draft = self.draft
        with Vertical(classes="dialog", id="bug-form") as dialog:
            dialog.border_title = Text("File a bug")
            yield Label(Text("Title"))
            yield Input(value=draft.title, id="bug-title", placeholder="what is wrong")
            with Horizontal(id="bug-form-row"):
                with Vertical(classes="field"):
                    yield Label(Text("Priority"))
                    yield Select(
                        [(p, p) for p in PRIORITIES],
                        value=draft.priority if draft.priority in PRIORITIES else "Medium",
                        allow_blank=False,
                        id="bug-priority",
                    )
                with Vertical(classes="field"):
                    yield Label(Text("Assigned to"))
                    yield Input(value=draft.assigned_to, id="bug-assignee")
            yield Label(Text("Description"))
            yield TextArea(draft.description, id="bug-description", soft_wrap=True)
            with Horizontal(classes="dialog-buttons"):
                yield Button("File bug", variant="primary", id="bug-submit")
                yield Button("Cancel", id="bug-cancel")
            yield Label(Text("ctrl+s: file   esc: cancel"), classes="dialog-hint")

    def on_mount(self) -> None:
        self.query_one("#bug-title", Input).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "bug-submit":
            self.action_submit()
        else:
            self.dismiss(None)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.focus_next()

    def action_submit(self) -> None:
        title = self.query_one("#bug-title", Input).value.strip()
        if not title:
            self.notify("A bug needs a title.", severity="error")
            self.query_one("#bug-title", Input).focus()
            return
        priority = self.query_one("#bug-priority", Select).value
        self.dismiss(
            BugDraft(
                title=title,
                priority=priority if isinstance(priority, str) else "Medium",
                description=self.query_one("#bug-description", TextArea).text,
                assigned_to=self.query_one("#bug-assignee", Input).value.strip(),
                related=dict(self.draft.related),
            )
        )

    def action_cancel(self) -> None:
        self.dismiss(None)
