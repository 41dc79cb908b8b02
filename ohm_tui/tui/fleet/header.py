"""The fleet header: the fleet's worst status, then each host's own (or how long it is silent)."""

from __future__ import annotations

from rich.text import Text
from textual.app import App

from ohm_tui.engine import fmt
from ohm_tui.fleet.snapshot import FleetSnapshot, HostStatus
from ohm_tui.tui import text
from ohm_tui.tui.tones import tone

TONES = {
    HostStatus.HEALTHY: "text-success",
    HostStatus.DEGRADED: "text-warning",
    HostStatus.CRITICAL: "text-error",
    HostStatus.UNREACHABLE: "text-warning",
}


def host_word(status: HostStatus) -> str:
    return "UNKNOWN" if status is HostStatus.UNREACHABLE else status.upper()


def header_text(app: App[object], snap: FleetSnapshot | None, now: float) -> Text:
    out = Text()
    if snap is None:
        out.append("FLEET · waiting for the first answers…")
        return out
    fleet = snap.status
    out.append(f"FLEET {host_word(fleet)}", style=tone(app, TONES[fleet], bold=True))
    out.append(f" · {text.count(len(snap.hosts), 'host')} · read-only\n")
    for i, view in enumerate(snap.hosts):
        if i:
            out.append(" · ")
        out.append_text(text.literal(view.host.name, "bold"))
        out.append(" ")
        if view.status is HostStatus.UNREACHABLE:
            since = (
                "never answered"
                if view.last_ok_at is None
                else "last answered " + fmt.ago(view.last_ok_at, now)
            )
            out.append(f"unreachable ({since})", style=tone(app, TONES[view.status]))
        else:
            out.append(str(view.status), style=tone(app, TONES[view.status]))
            n = sum(1 for issue in view.issues if issue.ack is None)
            if n:
                out.append(f" ({text.count(n, 'issue')})")
    return out
