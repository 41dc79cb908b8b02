"""``ohm``: the entry point. Parse, call one command, turn errors into one line.

Bad input must never show a traceback: every error the engine can raise for
bad input or a failed operation becomes ``ohm: error: <message>`` on stderr with
the exit code documented in ``ohm --help``. ``OHM_DEBUG=1`` shows tracebacks.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

from ohm_tui.cli.context import EXIT_FAILED, EXIT_UNKNOWN, EXIT_USAGE, CliError
from ohm_tui.cli.parser import build_parser
from ohm_tui.engine.config import ConfigError

EXIT_INTERRUPTED = 130


def _engine_errors() -> tuple[type[Exception], ...]:
    """The engine's own operational errors (store, state files), when those modules load."""
    found: list[type[Exception]] = []
    for module, name in (
        ("ohm_tui.engine.store", "StoreError"),
        ("ohm_tui.engine.sources.statefile", "StateFileError"),
    ):
        try:
            cls = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError):
            continue
        if isinstance(cls, type) and issubclass(cls, Exception):
            found.append(cls)
    return tuple(found)


def _printable(text: str) -> str:
    """One line without control characters: error messages can quote untrusted input."""
    text = "".join(ch if ch.isprintable() or ch in " \t\n" else "?" for ch in text)
    return " ".join(text.split())


def _message(exc: BaseException) -> str:
    if isinstance(exc, ConfigError) and exc.key.startswith("<"):
        # "<file>" / "<root>" are not keys a person can fix; the rest says it all.
        return str(exc).split(": ", 1)[-1]
    if isinstance(exc, KeyError) and exc.args:
        return str(exc.args[0])  # str(KeyError) would add quotes
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.strerror}: {exc.filename}" if exc.filename else exc.strerror
    return str(exc) or type(exc).__name__


def _fail(message: str, code: int) -> int:
    sys.stderr.write(f"ohm: error: {_printable(message)}\n")
    sys.stderr.flush()
    return code


def _debug() -> bool:
    return os.environ.get("OHM_DEBUG", "") not in ("", "0")


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Engine log lines (alerts, warnings) to whatever ``sys.stderr`` is now, one line each."""

    @property
    def stream(self) -> Any:
        return sys.stderr  # looked up at each write: tests and daemons swap sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass

    def format(self, record: logging.LogRecord) -> str:
        line = f"ohm: {record.levelname.lower()}: {_printable(record.getMessage())}"
        if record.exc_info and _debug():
            line += "\n" + logging.Formatter().formatException(record.exc_info)
        return line


def _setup_logging() -> None:
    """Send the engine's ``ohm.*`` logs to stderr: alerts must reach a journal or a person."""
    logger = logging.getLogger("ohm")
    for handler in list(logger.handlers):
        if isinstance(handler, _StderrHandler):
            logger.removeHandler(handler)
    logger.addHandler(_StderrHandler())
    logger.setLevel(logging.DEBUG if _debug() else logging.WARNING)
    logger.propagate = False


def _exit_code(value: object) -> int:
    if value is None:
        return 0
    return value if isinstance(value, int) else EXIT_USAGE


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = build_parser()
    args, extras = parser.parse_known_args(argv)
    if extras:
        # Report the error on the parser that owns the command, so its usage
        # and its error exit code (3 for check) apply.
        args._parser.error(f"unrecognized arguments: {' '.join(extras)}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``ohm`` with ``argv`` (default ``sys.argv[1:]``); returns the exit code."""
    try:
        args = _parse(argv)
    except SystemExit as exc:  # --help, --version, usage errors
        return _exit_code(exc.code)
    if args.handler is None:  # `ohm bug` without an action
        try:
            args._parser.error("choose an action: show, file, close, reopen, priority")
        except SystemExit as exc:
            return _exit_code(exc.code)
    _setup_logging()
    is_check = args.command == "check"
    usage = EXIT_UNKNOWN if is_check else EXIT_USAGE
    failed = EXIT_UNKNOWN if is_check else EXIT_FAILED
    try:
        return int(args.handler(args))
    except KeyboardInterrupt:
        sys.stderr.write("ohm: interrupted\n")
        return EXIT_UNKNOWN if is_check else EXIT_INTERRUPTED
    except BrokenPipeError:
        _silence_stdout()  # `ohm crashes | head`: the reader left, nothing to report
        return failed
    except Exception as exc:
        if _debug():
            raise
        if isinstance(exc, CliError):
            return _fail(str(exc), EXIT_UNKNOWN if is_check else exc.code)
        if isinstance(exc, _engine_errors()):
            return _fail(_message(exc), failed)
        if isinstance(exc, (ValueError, KeyError)):  # ConfigError, unknown bug/agent, bad value
            return _fail(_message(exc), usage)
        if isinstance(exc, OSError):
            return _fail(_message(exc), failed)
        return _fail(
            f"internal error: {type(exc).__name__}: {_message(exc)} "
            "(set OHM_DEBUG=1 for the traceback, and please report it)",
            failed,
        )


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
