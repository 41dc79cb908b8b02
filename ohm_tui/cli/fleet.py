"""``--remote URL`` / ``--fleet FILE``: the fleet, for ``ohm check`` and ``ohm console``.

``ohm check --remote`` polls each host's ``/api/v1/status`` once and exits with the
fleet's worst status (nagios codes): critical 2 beats unknown 3 (a host that does
not answer) beats degraded 1 beats healthy 0.
"""

from __future__ import annotations

import argparse

from ohm_tui.cli import output as out
from ohm_tui.cli.context import EXIT_UNKNOWN, CliError
from ohm_tui.engine import fmt
from ohm_tui.fleet.hosts import FleetError, Host, hosts_from_urls, load_fleet
from ohm_tui.fleet.snapshot import EXIT_CODES, FleetPoller, FleetSnapshot, HostStatus, HostView


def fleet_hosts(args: argparse.Namespace, code: int = 2) -> list[Host] | None:
    """The hosts named by ``--remote`` / ``--fleet``; None when neither was given."""
    urls: list[str] = getattr(args, "remote", None) or []
    fleet_file: str | None = getattr(args, "fleet", None)
    if not urls and not fleet_file:
        return None
    try:
        hosts = hosts_from_urls(urls, getattr(args, "token_file", None)) if urls else []
        if fleet_file:
            hosts += load_fleet(fleet_file)
    except FleetError as exc:
        raise CliError(str(exc), code) from None
    names = [h.name for h in hosts]
    if len(set(names)) != len(names):
        raise CliError("a host is named twice (by --remote and in --fleet)", code)
    return hosts


def host_line(view: HostView, now: float) -> str:
    """``  orch-1  critical: 2 issues (crash storm ...)`` or ``  orch-2  UNREACHABLE ...``."""
    name = out.clean(view.host.name)
    if view.status is HostStatus.UNREACHABLE:
        seen = (
            "never answered"
            if view.last_ok_at is None
            else ("last answered " + fmt.ago(view.last_ok_at, now))
        )
        return f"  {name}  unreachable ({seen}): {out.clean(view.error or 'no answer')}"
    counted = [i for i in view.issues if i.ack is None]
    worst_issue = next((i for i in counted if i.severity == view.reported), None)
    cause = f" ({out.clean(worst_issue.error)})" if worst_issue else ""
    return f"  {name}  {view.status}: {out.count(len(counted), 'issue')}{cause}"


def render_fleet(snap: FleetSnapshot) -> str:
    status = snap.status
    word = "UNKNOWN" if status is HostStatus.UNREACHABLE else status.upper()
    bad = sum(1 for h in snap.hosts if h.status is not HostStatus.HEALTHY)
    head = f"FLEET {word}: {bad} of {out.count(len(snap.hosts), 'host')} not healthy"
    return "\n".join([head, *(host_line(h, snap.taken_at) for h in snap.hosts)])


def fleet_json(snap: FleetSnapshot) -> dict[str, object]:
    return {
        "status": "unknown" if snap.status is HostStatus.UNREACHABLE else str(snap.status),
        "exit_code": snap.exit_code,
        "checked_at": snap.taken_at,
        "hosts": [
            {
                "name": h.host.name,
                "url": h.host.url,
                "status": str(h.status),
                "exit_code": EXIT_CODES[h.status],
                "last_ok_at": h.last_ok_at,
                "error": h.error,
                "issues": [i.to_dict() for i in h.issues],
            }
            for h in snap.hosts
        ],
    }


def cmd_check_remote(args: argparse.Namespace, hosts: list[Host]) -> int:
    if args.fix or args.prom_file:
        raise CliError("--fix and --prom-file act on this host: run them there", EXIT_UNKNOWN)
    snap = FleetPoller(hosts).poll_status()
    if args.json:
        out.emit_json(fleet_json(snap))
    else:
        out.emit(render_fleet(snap))
    return snap.exit_code
