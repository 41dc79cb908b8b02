"""The argparse tree: every command, its options, and its examples.

``--data-dir`` and ``--config`` are accepted before or after the command: the
sub-parsers declare them with ``SUPPRESS`` defaults so that a value given before
the command is not overwritten by the sub-parser's default.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, NamedTuple, NoReturn

from ohm_tui import __version__
from ohm_tui.cli import acks, actions, bugs, check, console, cost, demo, history, watch
from ohm_tui.engine.config import PRIORITIES
from ohm_tui.engine.model import parse_bug_number
from ohm_tui.engine.simulate import KNOWN_ERRORS
from ohm_tui.engine.timeutil import parse_duration

DESCRIPTION = """\
ohm, the Orchestrator Health Monitor: finds crashed, frozen, stalled and zombie
agents of an AI-agent orchestrator, respawns them within limits, and files
deduplicated bugs. With no command, opens the console."""

EXIT_CODES = """\
Exit codes:
  0  success
  1  an operation failed (for example a respawn that did not start)
  2  bad input: unknown option, bad duration, unknown bug or agent, config error,
     missing data directory
  ohm check instead uses 0 healthy, 1 degraded, 2 critical, 3 unknown (bad input too).
  Set OHM_DEBUG=1 to see tracebacks."""

EXAMPLES: dict[str, str] = {
    "ohm": """\
  ohm demo                          # try it: a live sample orchestrator, no setup
  ohm --data-dir /srv/orch/data     # open the console on a real orchestrator
  ohm check --fix                   # one check, fix what it finds
  ohm crashes --last=24h            # crash history
  ohm watch                         # headless loop for systemd""",
    "console": """\
  ohm console --data-dir /srv/orch/data
  ohm console --read-only           # watch only: every fix is disabled
  ohm console --listen 127.0.0.1:9464   # also serve /metrics and /api/v1 while it runs
  ohm console --remote http://orch-1:9464 --remote http://orch-2:9464 --token-file t
  ohm console --fleet fleet.toml    # one read-only console over several hosts""",
    "check": """\
  ohm check                         # status, metrics, one line per issue
  ohm check --fix                   # also respawn, clean up and file bugs
  ohm check --json | jq .status
  ohm check --prom-file /var/lib/node_exporter/textfile/ohm.prom  # for node_exporter
  ohm check --data-dir /srv/orch/data || echo "not healthy"
  ohm check --remote http://orch-1:9464 --remote http://orch-2:9464  # the fleet's worst

Exit codes (monitoring-plugin convention):
  0 healthy, 1 degraded, 2 critical, 3 unknown (the check could not run:
  bad option, config error, missing data directory, engine error)
  With --remote/--fleet: the worst host; a host that does not answer is
  3 unknown, unless another host is critical (2)""",
    "crashes": """\
  ohm crashes                       # last 24 hours
  ohm crashes --last=90m --agent architect
  ohm crashes --last=7d --task spec-20 --json
  ohm crashes --last=7d --limit 0   # every row, not only the newest 200
  ohm crashes --wide                # every column in full (as when piped)""",
    "events": """\
  ohm events                        # last hour: crashed, respawned, gave_up, bug_filed...
  ohm events --last=24h --json""",
    "agents": """\
  ohm agents
  ohm agents --json | jq '.[] | select(.status == "crashed")'""",
    "cost": """\
  ohm cost                          # last 24 hours, by agent type
  ohm cost --last 1h --by task      # where this hour's money went
  ohm cost --last 7d --by hour --json""",
    "bugs": """\
  ohm bugs                          # open bugs
  ohm bugs --status all --json""",
    "bug": """\
  ohm bug show BUG-003
  ohm bug file --title "architect hangs at a prompt" --priority High
  ohm bug close BUG-003
  ohm bug reopen 3
  ohm bug priority BUG-003 Critical""",
    "bug show": """\
  ohm bug show BUG-003
  ohm bug show 3 --json""",
    "bug file": """\
  ohm bug file --title "architect hangs at a [y/N] prompt" --priority High
  ohm bug file --title "slow loop" --priority Low --description "cycles take 50 s" \\
               --assigned-to project_manager""",
    "bug close": """\
  ohm bug close BUG-003""",
    "bug reopen": """\
  ohm bug reopen BUG-003""",
    "bug priority": """\
  ohm bug priority BUG-003 Critical""",
    "simulate-crash": """\
  ohm simulate-crash --agent=architect                  # ImportError, as in the seed
  ohm simulate-crash --agent=code_developer --error RuntimeError --task impl-7
  ohm simulate-crash --agent=architect && ohm check --fix && ohm crashes --last=1h""",
    "watch": """\
  ohm watch                         # check every health_check_interval, auto-fix on
  ohm watch --interval 10 --no-fix  # report only
  ohm watch --listen 127.0.0.1:9464 # also serve /metrics and the read-only API
  ohm watch --listen 0.0.0.0:9464 --token-file /etc/ohm/token  # off loopback: a token
  # as a systemd service: ExecStart=/usr/local/bin/ohm watch --data-dir /srv/orch/data""",
    "respawn": """\
  ohm respawn 14993                 # by PID
  ohm respawn 14993@1760903000      # by agent key (pid@start)
  ohm respawn spec-20 --dry-run     # by task id; show what would run""",
    "stop": """\
  ohm stop 14993                    # SIGTERM, then SIGKILL after a grace period
  ohm stop spec-20""",
    "clean-zombies": """\
  ohm clean-zombies --dry-run       # list what would be reaped and cleaned
  ohm clean-zombies""",
    "ack": """\
  ohm ack                           # the issues now, with the id to acknowledge each by
  ohm ack crash_storm --for 1h      # silence the crash storm for an hour, or until it grows
  ohm ack spec-20 --by alice        # a task's crash, until a new crash or it goes away
  ohm ack --list                    # open acknowledgements (--all: with ended ones)""",
    "unack": """\
  ohm unack crash_storm             # take an acknowledgement back: it alerts again""",
    "demo": """\
  ohm demo                          # console on a live sample orchestrator
  ohm demo --no-tui                 # the same, as 'ohm watch' output
  ohm demo --seed 3 --speed 4 --keep
  ohm demo --era 2                  # an orchestrator of the agent_lifecycle releases""",
}


class OhmParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line, with a configurable exit code.

    ``check`` exits 3 (unknown) on usage errors, as monitoring plugins must.
    """

    def __init__(self, *args: Any, error_status: int = 2, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)
        self.error_status = error_status

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{self.prog}: error: {message} (see '{self.prog} --help')\n")
        raise SystemExit(self.error_status)


class Duration(NamedTuple):
    """A duration as typed (for messages) and in seconds (for the engine)."""

    text: str
    seconds: float


def duration_arg(text: str) -> Duration:
    try:
        return Duration(text.strip(), parse_duration(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def bug_arg(text: str) -> int:
    try:
        return parse_bug_number(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number greater than 0, got {text!r}")
    return value


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text!r}")
    return value


def _epilog(name: str, exit_codes: bool = True) -> str:
    text = "Examples:\n" + EXAMPLES[name]
    if exit_codes and name != "check":
        text += "\n\n" + EXIT_CODES
    return text


def _common(default: Any) -> OhmParser:
    """The options every command takes."""
    p = OhmParser(add_help=False)
    g = p.add_argument_group("common options")
    g.add_argument(
        "--data-dir",
        metavar="DIR",
        default=default,
        help="the orchestrator's state directory (default: data, or data_dir in the config)",
    )
    g.add_argument(
        "--config",
        metavar="FILE",
        default=default,
        help="ohm.toml, or a pyproject.toml with [tool.ohm] (default: ./ohm.toml if present)",
    )
    return p


def _json(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print one JSON document for scripts")


def _wide(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--wide",
        action="store_true",
        help="every column in full, as when piped (default at a terminal: fit its width)",
    )


def _last(p: argparse.ArgumentParser, default: str) -> None:
    p.add_argument(
        "--last",
        type=duration_arg,
        default=default,
        metavar="DURATION",
        help=f"how far back: 90s, 15m, 24h, 7d (default: {default})",
    )


def build_parser() -> OhmParser:
    common = _common(argparse.SUPPRESS)
    parser = OhmParser(
        prog="ohm",
        description=DESCRIPTION,
        epilog=_epilog("ohm"),
        parents=[_common(None)],
    )
    parser.add_argument("--version", action="version", version=f"ohm {__version__}")
    parser.add_argument(
        "--read-only", action="store_true", help="console only: disable every action"
    )
    parser.set_defaults(handler=console.cmd_console, command=None, _parser=parser)
    sub = parser.add_subparsers(title="commands", metavar="COMMAND", parser_class=OhmParser)

    def add(name: str, help_text: str, **kwargs: Any) -> OhmParser:
        p: OhmParser = sub.add_parser(
            name,
            help=help_text,
            description=help_text,
            epilog=_epilog(name),
            parents=[common],
            **kwargs,
        )
        p.set_defaults(command=name, _parser=p)
        return p

    p = add("console", "open the console (the default command)")
    p.add_argument(
        "--read-only",
        action="store_true",
        default=argparse.SUPPRESS,
        help="disable every action that changes anything",
    )
    _listen(p, "console")
    _remote(p)
    p.set_defaults(handler=console.cmd_console)

    p = add("check", "run one health check and print it", error_status=3)
    p.add_argument("--fix", action="store_true", help="also apply auto-fixes and file bugs")
    p.add_argument(
        "--prom-file",
        metavar="PATH",
        help="also write the Prometheus metrics to PATH, atomically "
        "(for node_exporter's textfile collector)",
    )
    _remote(p, token=True)
    _json(p)
    p.set_defaults(handler=check.cmd_check)

    p = add("crashes", "crash history")
    _last(p, "24h")
    p.add_argument("--agent", metavar="TYPE", help="only this agent type")
    p.add_argument("--task", metavar="ID", help="only this task id")
    p.add_argument(
        "--limit",
        type=int,
        default=None,
        metavar="N",
        help="newest N rows (default: 200 in the table, all with --json; 0 = all)",
    )
    _wide(p)
    _json(p)
    p.set_defaults(handler=history.cmd_crashes)

    p = add("events", "the timeline: crashes, respawns, cleanups, bugs filed")
    _last(p, "1h")
    p.add_argument("--limit", type=positive_int, default=200, metavar="N", help="at most N events")
    _wide(p)
    _json(p)
    p.set_defaults(handler=history.cmd_events)

    p = add("agents", "live agents: pid, type, task, status, uptime, cpu, memory")
    _wide(p)
    _json(p)
    p.set_defaults(handler=history.cmd_agents)

    p = add("cost", "spend and tokens of session agents (claude_invocations.db)")
    _last(p, "24h")
    p.add_argument(
        "--by", choices=["type", "task", "hour"], default="type", help="group by (default: type)"
    )
    _json(p)
    p.set_defaults(handler=cost.cmd_cost)

    p = add("bugs", "list bugs")
    p.add_argument("--status", choices=["open", "all"], default="open", help="default: open")
    _wide(p)
    _json(p)
    p.set_defaults(handler=bugs.cmd_bugs)

    _add_bug_commands(add("bug", "show, file, close, reopen or reprioritize one bug"), common)

    p = add("simulate-crash", "start a real agent process that really crashes")
    p.add_argument("--agent", default="architect", metavar="TYPE", help="default: architect")
    p.add_argument(
        "--error",
        default="ImportError",
        choices=KNOWN_ERRORS,
        metavar="TYPE",
        help="the exception it raises (default: ImportError); one of: " + ", ".join(KNOWN_ERRORS),
    )
    p.add_argument("--task", metavar="ID", help="task id (default: a generated one)")
    _json(p)
    p.set_defaults(handler=actions.cmd_simulate_crash)

    p = add("watch", "headless monitor loop: one line per event (for systemd)")
    p.add_argument(
        "--interval",
        type=positive_float,
        metavar="SECONDS",
        help="seconds between checks (default: health_check_interval, 30)",
    )
    p.add_argument("--no-fix", action="store_true", help="report only, never fix")
    _listen(p, "watch")
    p.set_defaults(handler=watch.cmd_watch)

    p = add("respawn", "respawn an agent now (manual fix, ignores the retry limit)")
    p.add_argument("agent", metavar="AGENT", help="PID, agent key (pid@start) or task id")
    p.add_argument("--dry-run", action="store_true", help="only show what would run")
    _json(p)
    p.set_defaults(handler=actions.cmd_respawn)

    p = add("stop", "stop an agent (SIGTERM, then SIGKILL), after checking its identity")
    p.add_argument("agent", metavar="AGENT", help="PID, agent key (pid@start) or task id")
    _json(p)
    p.set_defaults(handler=actions.cmd_stop)

    p = add("clean-zombies", "reap zombies and move dead entries to completed_agents")
    p.add_argument("--dry-run", action="store_true", help="list what would be done")
    _json(p)
    p.set_defaults(handler=actions.cmd_clean_zombies)

    p = add("ack", "acknowledge an issue: no alert and no colour until it changes")
    p.add_argument(
        "issue",
        nargs="?",
        metavar="ISSUE",
        help="issue id (from 'ohm ack' or 'ohm check --json'), or a type or task naming one",
    )
    p.add_argument(
        "--for",
        dest="for_",
        type=duration_arg,
        metavar="DURATION",
        help="also end it after this long: 90s, 15m, 1h, 7d (default: until it changes)",
    )
    p.add_argument("--by", metavar="NAME", help="who acknowledges (default: your login name)")
    p.add_argument("--list", action="store_true", help="list open acknowledgements")
    p.add_argument("--all", action="store_true", help="list every acknowledgement, ended ones too")
    _json(p)
    p.set_defaults(handler=acks.cmd_ack)

    p = add("unack", "take back the acknowledgement of an issue")
    p.add_argument("issue", metavar="ISSUE", help="issue id, type, task or ack number (#N)")
    p.add_argument("--by", metavar="NAME", help="who takes it back (default: your login name)")
    _json(p)
    p.set_defaults(handler=acks.cmd_unack)

    p = add("demo", "run a live sample orchestrator and watch it (no setup)")
    p.add_argument("--no-tui", action="store_true", help="print 'ohm watch' output instead")
    p.add_argument("--seed", type=int, default=7, help="randomness seed (default: 7)")
    p.add_argument(
        "--speed", type=positive_float, default=1.0, help="time speed-up factor (default: 1)"
    )
    p.add_argument(
        "--agents", type=positive_int, default=6, metavar="N", help="max agents (default: 6)"
    )
    p.add_argument("--keep", action="store_true", help="keep the state directory afterwards")
    p.add_argument(
        "--era",
        type=int,
        choices=(1, 2, 3),
        default=3,
        help="which orchestrator release to imitate: 1 JSON files, 2 agent_lifecycle table, "
        "3 claude sessions with cost (default: 3, the newest)",
    )
    p.set_defaults(handler=demo.cmd_demo)
    return parser


def _add_bug_commands(bug: OhmParser, common: OhmParser) -> None:
    bug.set_defaults(handler=None)
    sub = bug.add_subparsers(title="bug commands", metavar="ACTION", parser_class=OhmParser)

    def add(name: str, help_text: str) -> OhmParser:
        p: OhmParser = sub.add_parser(
            name,
            help=help_text,
            description=help_text,
            epilog=_epilog(f"bug {name}"),
            parents=[common],
        )
        p.set_defaults(_parser=p)
        return p

    def number(p: OhmParser) -> None:
        p.add_argument("bug", type=bug_arg, metavar="BUG", help="BUG-003, or 3")

    p = add("show", "the whole bug report")
    number(p)
    _json(p)
    p.set_defaults(handler=bugs.cmd_bug_show)

    p = add("file", "file a bug by hand (category manual)")
    p.add_argument("--title", required=True)
    p.add_argument("--priority", required=True, choices=PRIORITIES)
    p.add_argument("--description", default="")
    p.add_argument("--assigned-to", metavar="AGENT", help="default: code_developer")
    _json(p)
    p.set_defaults(handler=bugs.cmd_bug_file)

    for name, verb, handler in (
        ("close", "close a bug", bugs.cmd_bug_close),
        ("reopen", "reopen a closed bug", bugs.cmd_bug_reopen),
    ):
        p = add(name, verb)
        number(p)
        _json(p)
        p.set_defaults(handler=handler)

    p = add("priority", "change a bug's priority")
    number(p)
    p.add_argument("priority", choices=PRIORITIES)
    _json(p)
    p.set_defaults(handler=bugs.cmd_bug_priority)


def _listen(p: argparse.ArgumentParser, command: str) -> None:
    p.add_argument(
        "--listen",
        metavar="HOST:PORT",
        help="serve /metrics, /healthz and the read-only /api/v1 (e.g. 127.0.0.1:9464; "
        "config key listen)",
    )
    if command == "watch":
        help_text = "bearer token every request must send (mode 600; required off loopback)"
    else:
        help_text = (
            "with --listen: the bearer token every request must send; with --remote: "
            "the token sent to the hosts (mode 600)"
        )
    p.add_argument("--token-file", metavar="FILE", help=help_text)


def _remote(p: argparse.ArgumentParser, *, token: bool = False) -> None:
    p.add_argument(
        "--remote",
        action="append",
        metavar="URL",
        help="a host's ohm watch --listen endpoint (repeat for several): the fleet, read-only",
    )
    p.add_argument(
        "--fleet",
        metavar="FILE",
        help="fleet.toml: [[host]] tables with url (and name, token_file, ssh)",
    )
    if token:
        p.add_argument(
            "--token-file", metavar="FILE", help="with --remote: the bearer token sent (mode 600)"
        )
