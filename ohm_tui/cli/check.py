"""``ohm check``: one health check, with monitoring-plugin exit codes."""

from __future__ import annotations

import argparse

from ohm_tui.cli import output as out
from ohm_tui.cli.acks import ack_text
from ohm_tui.cli.context import EXIT_UNKNOWN, CliError, open_monitor
from ohm_tui.cli.fleet import cmd_check_remote, fleet_hosts
from ohm_tui.engine.detect import headline
from ohm_tui.engine.model import STATUS_ORDER, ActionResult, HealthReport, Issue
from ohm_tui.engine.monitor import OrchestratorHealthMonitor


def exit_code_for(status: str) -> int:
    """0 healthy, 1 degraded, 2 critical, 3 anything else (unknown)."""
    return STATUS_ORDER.get(status, EXIT_UNKNOWN)


def render_issue(issue: Issue) -> str:
    """``  [critical] orchestrator_freeze: <detail> (agent, task; action; bug)``, never cut."""
    context = []
    if issue.agent_type or issue.agent_pid is not None:
        context.append(out.agent_label(issue.agent_type, issue.agent_pid))
    if issue.task_id:
        context.append(f"task {out.clean(issue.task_id)}")
    if issue.action_taken:
        context.append(f"action: {out.clean(issue.action_taken)}")
    if issue.bug_number is not None:
        context.append(out.bug_label(issue.bug_number))
    if issue.ack is not None:  # still listed, never hidden: marked and out of the status
        context.append(ack_text(issue.ack))
    line = f"  [{issue.severity}] {issue.type}: {out.clean(issue.error)}"
    return line + (f" ({'; '.join(context)})" if context else "")


def render_report(report: HealthReport, data_dir: str) -> str:
    """The status line, the metrics line, then one line per issue."""
    n = len(report.issues)
    acked = headline.acked_count(report)
    cause = headline.headline(report)
    lines = [
        f"{report.status.upper()}: {out.count(n, 'issue')}"
        + (f", {acked} acknowledged" if acked else "")
        + (f" (cause: {out.clean(cause)})" if cause else "")
        + f"  (data dir {data_dir}, checked {out.local_iso(report.checked_at)})",
        f"  active agents {report.active_agents}"
        f" | crashed last hour {report.crashed_agents_last_hour}"
        f" | respawn success {out.rate(report.respawn_success_rate)}"
        f" | last poll {out.seconds_ago(report.orchestrator_last_poll)}",
    ]
    if report.sources:
        lines.append("  read " + ", ".join(out.clean(s) for s in report.sources))
    lines.extend(render_issue(issue) for issue in report.issues)
    return "\n".join(lines)


def render_fixes(results: list[ActionResult], bug_numbers: list[int]) -> str:
    lines = ["", "Fixes:" if results else "Fixes: none needed"]
    for r in results:
        mark = "ok" if r.ok else "FAILED"
        lines.append(f"  [{mark}] {r.action}: {out.clean(r.message)}")
    if bug_numbers:
        lines.append("Bugs filed or updated: " + ", ".join(out.bug_label(b) for b in bug_numbers))
    else:
        lines.append("Bugs filed or updated: none")
    return "\n".join(lines)


def _write_prom(monitor: OrchestratorHealthMonitor, path: str) -> None:
    """``--prom-file``: a failed write is unknown status (3), said on stderr."""
    from ohm_tui.web.textfile import write_prom_file

    try:
        write_prom_file(monitor, path)
    except OSError as exc:
        raise CliError(f"cannot write {path}: {exc.strerror or exc}", EXIT_UNKNOWN) from None


def cmd_check(args: argparse.Namespace) -> int:
    hosts = fleet_hosts(args, EXIT_UNKNOWN)
    if hosts is not None:
        return cmd_check_remote(args, hosts)
    with open_monitor(args, sources_or_exit=EXIT_UNKNOWN) as monitor:
        report = monitor.check()
        results: list[ActionResult] = []
        bug_numbers: list[int] = []
        if args.fix:
            results = monitor.auto_fix_issues(report)
            bug_numbers = monitor.report_bugs_if_any(report)
        if args.prom_file:
            _write_prom(monitor, args.prom_file)
        if args.json:
            doc = report.to_dict()
            doc["checked_at"] = report.checked_at
            doc["sources"] = report.sources
            if args.fix:
                doc["fixes"] = [r.to_dict() for r in results]
                doc["bugs_reported"] = bug_numbers
            out.emit_json(doc)
        else:
            out.emit(render_report(report, monitor.config.data_dir))
            if args.fix:
                out.emit(render_fixes(results, bug_numbers))
        return exit_code_for(report.status)
