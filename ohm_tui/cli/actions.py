"""Manual fixes: ``respawn``, ``stop``, ``clean-zombies``, and ``simulate-crash``.

These are the same actions the console offers on a key, so the engine does the
work and decides what is safe; the CLI shows what will happen, then the result.
"""

from __future__ import annotations

import argparse
import shlex

from ohm_tui.cli import output as out
from ohm_tui.cli.context import EXIT_FAILED, EXIT_OK, agent_ref, open_monitor
from ohm_tui.engine.model import ActionResult


def render_result(result: ActionResult) -> str:
    mark = "ok" if result.ok else "FAILED"
    line = f"[{mark}] {result.action}: {out.clean(result.message)}"
    if result.new_pid is not None:
        line += f" (new PID {result.new_pid})"
    if result.bug_number is not None:
        line += f" ({out.bug_label(result.bug_number)})"
    return line


def _finish(result: ActionResult, args: argparse.Namespace, plan: str | None = None) -> int:
    if args.json:
        doc = result.to_dict()
        if plan is not None:
            doc["plan"] = plan
        out.emit_json(doc)
    else:
        out.emit(render_result(result))
    return EXIT_OK if result.ok else EXIT_FAILED


def cmd_respawn(args: argparse.Namespace) -> int:
    with open_monitor(args) as monitor:
        plan = monitor.describe_respawn(agent_ref(args.agent))
        if args.dry_run:
            if args.json:
                out.emit_json({"plan": plan})
            else:
                out.emit(out.clean_block(plan))
            return EXIT_OK
        if not args.json:
            out.emit(out.clean_block(plan))
        return _finish(monitor.respawn(agent_ref(args.agent)), args, plan)


def cmd_stop(args: argparse.Namespace) -> int:
    with open_monitor(args) as monitor:
        return _finish(monitor.stop_agent(agent_ref(args.agent)), args)


def cmd_clean_zombies(args: argparse.Namespace) -> int:
    with open_monitor(args) as monitor:
        if args.dry_run:
            plan = monitor.plan_zombie_cleanup()
            if args.json:
                out.emit_json({"dry_run": True, "plan": plan})
            elif plan:
                out.emit("Would clean:")
                for line in plan:
                    out.emit(f"  {out.clean(line)}")
            else:
                out.emit("Nothing to clean.")
            return EXIT_OK
        return _finish(monitor.clean_zombies(), args)


def cmd_simulate_crash(args: argparse.Namespace) -> int:
    with open_monitor(args) as monitor:
        agent = monitor.simulate_crash(args.agent, args.error, args.task)
        data_dir = monitor.config.data_dir
    if args.json:
        out.emit_json(agent.to_dict())
        return EXIT_OK
    dd = shlex.quote(data_dir)
    lines = [
        f"Started a simulated {out.clean(agent.agent_type)} agent, PID {agent.pid}, "
        f"task {out.clean(agent.task_id)}; it will crash with {out.clean(args.error)}.",
        f"  log file: {out.clean(agent.log_file)}",
        "  watch it:",
        f"    ohm watch --data-dir {dd}          # events as they happen",
        f"    ohm check --fix --data-dir {dd}    # detect, respawn, file bugs",
        f"    ohm crashes --last=1h --data-dir {dd}",
    ]
    if agent.log_file:
        lines.append(f"    tail -f {shlex.quote(agent.log_file)}")
    out.emit("\n".join(lines))
    return EXIT_OK
