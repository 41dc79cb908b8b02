"""Supervisor-of-one: start an agent, say its pid, wait, record how it ended.

Usage::

    runner.py --status-fd N --exits-dir DIR --log FILE [--cwd DIR] [--meta JSON]
              [--env-exact] [--env K=V]... -- argv...
    runner.py --status-fd N --request-fd M      (the options above arrive on fd M,
                                                  NUL-separated, when ohm needs them)

ohm starts this file as ``python -S -E -P runner.py`` in a session of its own, so
the agent survives ohm and Ctrl-C in ohm's terminal. Only what Python loads at
start-up anyway is imported before the agent runs (``posix``, ``_signal``,
``time``): ``os``, ``signal`` and ``json`` alone would double the start-up time,
and a respawn waits for it. Nothing from ohm is imported, ever.

The status fd gets one line, ``{"pid": P, "started_at": T, "start_ticks": K}`` or
``{"error": "...", "errno": E}``. When the agent ends, an exit record is written
atomically to ``<exits-dir>/<pid>-<int(started_at)>.json``, even if ohm is long
gone. SIGTERM/SIGINT/SIGHUP sent to the runner are passed on to the agent.
"""

# ruff: noqa: SIM105  (try/except/pass, not contextlib: importing it costs start-up time)
import posix
import sys
import time

TYPE_CHECKING = False  # not ``from typing``: importing typing costs more than all the rest
if TYPE_CHECKING:
    import signal as _signal
else:  # the C half of ``signal``: already loaded, and free of enum's start-up cost
    import _signal

_FORWARDED = (_signal.SIGTERM, _signal.SIGINT, _signal.SIGHUP)
_ALIASES = {"SIGIOT", "SIGPOLL", "SIGCLD", "SIGRTMIN", "SIGRTMAX"}
_DEFAULT_PATH = "/bin:/usr/bin"
_EXEC_FAILED = 127

_agent_pid = 0  # set while the agent may still be signalled (not yet reaped)
_agent_pidfd = -1
_pending: list[int] = []


class UsageError(Exception):
    pass


# ------------------------------------------------------------------ JSON (no json import)
_ESCAPES = {i: f"\\u{i:04x}" for i in range(0x20)}
_ESCAPES.update({ord('"'): '\\"', ord("\\"): "\\\\", 8: "\\b", 9: "\\t", 10: "\\n", 12: "\\f"})
_ESCAPES[13] = "\\r"
_SURROGATES = {i: f"\\u{i:04x}" for i in range(0xD800, 0xE000)}


def _js(value: object) -> str:
    """A tiny JSON encoder for the record's types (str, int, float, bool, None, list)."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        finite = value == value and value not in (float("inf"), -float("inf"))
        return repr(value) if finite else "null"
    if isinstance(value, str):
        text = value.translate(_ESCAPES)
        if any("\ud800" <= c <= "\udfff" for c in text):  # bytes from surrogateescape
            text = text.translate(_SURROGATES)
        return '"' + text + '"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_js(v) for v in value) + "]"
    return _js(str(value))


def _js_object(pairs: list[tuple[str, str]]) -> str:
    return "{" + ", ".join(f"{_js(k)}: {v}" for k, v in pairs) + "}"


# ------------------------------------------------------------------ arguments
def _parse(tokens: list[str]) -> dict[str, object]:
    opts: dict[str, object] = {"env": [], "env_exact": False}
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if tok == "--":
            opts["argv"] = tokens[i + 1 :]
            return opts
        if tok == "--env-exact":
            opts["env_exact"] = True
            i += 1
            continue
        if tok not in (
            "--status-fd",
            "--request-fd",
            "--exits-dir",
            "--log",
            "--cwd",
            "--meta",
            "--env",
        ):
            raise UsageError(f"unknown option {tok!r}")
        if i + 1 >= len(tokens):
            raise UsageError(f"option {tok} needs a value")
        value = tokens[i + 1]
        if tok == "--env":
            env = opts["env"]
            assert isinstance(env, list)
            env.append(value)
        else:
            opts[tok[2:].replace("-", "_")] = value
        i += 2
    return opts


def _read_request(fd: int) -> list[str]:
    """Block until ohm sends the request (EOF ends it); [] if ohm went away first."""
    chunks = []
    while True:
        chunk = posix.read(fd, 1 << 16)
        if not chunk:
            break
        chunks.append(chunk)
    posix.close(fd)
    data = b"".join(chunks)
    if not data:
        return []
    return [t.decode("utf-8", "surrogateescape") for t in data.split(b"\0")]


# ------------------------------------------------------------------ helpers
def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[posix.write(fd, view) :]


def _report(fd: int, line: str) -> None:
    """Send the one status line; ohm may be gone already, which is fine."""
    if fd < 0:
        return
    try:
        _write_all(fd, (line + "\n").encode("utf-8", "surrogateescape"))
    except OSError:
        pass
    finally:
        posix.close(fd)


def _forward(signum: int, frame: object) -> None:
    """Pass a stop signal on to the agent; held back if it is not started yet."""
    if _agent_pid <= 0:
        _pending.append(signum)
        return
    try:
        if _agent_pidfd >= 0:
            _signal.pidfd_send_signal(_agent_pidfd, signum)
        else:
            posix.kill(_agent_pid, signum)
    except OSError:
        pass


def _resolve(exe: str, env: dict[str, str]) -> str:
    """The file execvp would run, searched on the AGENT's PATH."""
    if "/" in exe:
        return exe
    for d in (env.get("PATH") or _DEFAULT_PATH).split(":"):
        cand = (d or ".") + "/" + exe
        try:
            st = posix.stat(cand)
        except OSError:
            continue
        if (st.st_mode & 0o170000) == 0o100000 and posix.access(cand, posix.X_OK):
            return cand
    raise FileNotFoundError(2, f"executable not found on PATH {env.get('PATH', _DEFAULT_PATH)!r}")


def _start_ticks(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
        return int(data[data.rfind(b")") + 2 :].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def _signal_names() -> dict[int, str]:
    names: dict[int, str] = {}
    for name in sorted(dir(_signal)):
        if name.startswith("SIG") and not name.startswith("SIG_") and name not in _ALIASES:
            value = getattr(_signal, name)
            if isinstance(value, int):
                names.setdefault(value, name)
    return names


def _write_record(exits_dir: str, name: str, fields: list[tuple[str, str]]) -> None:
    """Write the exit record atomically: readers never see half a file."""
    data = (_js_object(fields) + "\n").encode("utf-8", "surrogateescape")
    try:
        posix.mkdir(exits_dir, 0o750)
    except FileExistsError:
        pass
    final = f"{exits_dir}/{name}"
    tmp = f"{exits_dir}/.{name}.{posix.getpid()}.tmp"
    fd = posix.open(tmp, posix.O_WRONLY | posix.O_CREAT | posix.O_TRUNC | posix.O_CLOEXEC, 0o640)
    try:
        _write_all(fd, data)
    finally:
        posix.close(fd)
    posix.replace(tmp, final)


def _log_line(text: str) -> None:
    """One line for people at the end of the log, on a line of its own."""
    try:
        size = posix.fstat(1).st_size
        prefix = b""
        if size > 0:
            try:  # fd 1 is the log, opened read-write for this one look back
                if posix.pread(1, 1, size - 1) not in (b"\n", b""):
                    prefix = b"\n"
            except OSError:
                pass
        _write_all(1, prefix + text.encode("utf-8", "surrogateescape") + b"\n")
    except OSError:
        pass


# ------------------------------------------------------------------ main
def main(args: list[str]) -> int:
    global _agent_pid, _agent_pidfd
    try:  # "ohm-runner" in ps / top instead of "python3"
        with open("/proc/self/comm", "w") as f:
            f.write("ohm-runner")
    except OSError:
        pass
    try:
        opts = _parse(args)
        status_fd = int(str(opts.get("status_fd", "-1")))
        if "request_fd" in opts:
            request_fd = int(str(opts["request_fd"]))
            posix.set_inheritable(request_fd, False)
            if status_fd >= 0:
                posix.set_inheritable(status_fd, False)
            tokens = _read_request(request_fd)
            if not tokens:
                return 0  # a spare runner that was not needed
            opts.update(_parse(tokens))
    except (UsageError, ValueError, OSError) as exc:
        posix.write(2, f"ohm-runner: {exc}\n".encode())
        return 2
    if status_fd >= 0:
        posix.set_inheritable(status_fd, False)  # the agent must not hold our status pipe
    argv = opts.get("argv")
    exits_dir = opts.get("exits_dir")
    log_file = opts.get("log")
    if not isinstance(argv, list) or not argv or not exits_dir or not log_file:
        _report(status_fd, '{"error": "runner usage: --exits-dir, --log and -- argv are required"}')
        posix.write(2, b"ohm-runner: --exits-dir, --log and -- argv... are required\n")
        return 2
    exits_dir = str(exits_dir)
    log_file = str(log_file)
    cwd = str(opts["cwd"]) if opts.get("cwd") else None
    meta = str(opts.get("meta") or "{}")
    if not (meta.startswith("{") and meta.endswith("}")):
        meta = _js(meta)  # the parent always sends a JSON object; anything else is kept as text

    for sig in _FORWARDED:
        _signal.signal(sig, _forward)

    env: dict[str, str]
    if opts["env_exact"]:
        env = {}
    else:
        env = {
            k.decode("utf-8", "surrogateescape"): v.decode("utf-8", "surrogateescape")
            for k, v in posix.environ.items()
        }
    env_items = opts["env"]
    assert isinstance(env_items, list)
    for item in env_items:
        k, _, v = str(item).partition("=")
        if k:
            env[k] = v

    error: str | None = None
    err_no = 0
    pid = 0
    started_at = time.time()
    try:
        logfd = posix.open(
            log_file,
            posix.O_RDWR | posix.O_APPEND | posix.O_CREAT | posix.O_CLOEXEC,
            0o640,
        )
        posix.dup2(logfd, 1)
        posix.dup2(logfd, 2)
        posix.close(logfd)
        if cwd is not None:
            posix.chdir(cwd)
        path = _resolve(str(argv[0]), env)
        pid = posix.posix_spawn(
            path,
            [str(a) for a in argv],
            env,
            setsigdef=(*_FORWARDED, _signal.SIGPIPE, _signal.SIGXFSZ),
            setsigmask=(),
        )
        started_at = time.time()
    except OSError as exc:
        error = f"{exc.strerror or exc}" + (f": {exc.filename!r}" if exc.filename else "")
        err_no = exc.errno or 0
    except ValueError as exc:  # NUL in an argument, '=' in an env name...
        error = str(exc)
    if error is not None or pid <= 0:
        message = error or "spawn failed"
        _report(status_fd, _js_object([("error", _js(message)), ("errno", _js(err_no))]))
        ended = time.time()
        fields = [
            ("pid", "null"),
            ("runner_pid", _js(posix.getpid())),
            ("started_at", _js(started_at)),
            ("ended_at", _js(ended)),
            ("exit_code", _js(_EXEC_FAILED)),
            ("signal", "null"),
            ("error", _js(message)),
            ("argv", _js(argv)),
            ("cwd", _js(cwd)),
            ("log_file", _js(log_file)),
            ("meta", meta),
        ]
        try:
            _write_record(exits_dir, f"failed-{posix.getpid()}-{int(started_at)}.json", fields)
        except OSError as exc:
            posix.write(2, f"ohm-runner: cannot write exit record: {exc}\n".encode())
        _log_line(f"[ohm-runner] could not start {argv[0]!r}: {message} (exit code 127)")
        return 0

    try:
        _agent_pidfd = posix.pidfd_open(pid)
    except (AttributeError, OSError):
        _agent_pidfd = -1
    _agent_pid = pid
    ticks = _start_ticks(pid)
    _report(
        status_fd,
        _js_object(
            [("pid", _js(pid)), ("started_at", _js(started_at)), ("start_ticks", _js(ticks))]
        ),
    )
    while _pending:
        _forward(_pending.pop(0), None)

    # Wait WITHOUT reaping first, so that no signal can be forwarded to the pid
    # once it is free for reuse; then reap.
    try:
        posix.waitid(posix.P_PID, pid, posix.WEXITED | posix.WNOWAIT)
    except ChildProcessError:
        pass
    _agent_pid = 0
    status = 0
    try:
        _, status = posix.waitpid(pid, 0)
        code = posix.waitstatus_to_exitcode(status)
    except (ChildProcessError, ValueError):
        code = -1
    ended = time.time()
    if _agent_pidfd >= 0:
        posix.close(_agent_pidfd)
        _agent_pidfd = -1
    signame = _signal_names().get(-code, f"SIG{-code}") if code < 0 else None
    fields = [
        ("pid", _js(pid)),
        ("runner_pid", _js(posix.getpid())),
        ("started_at", _js(started_at)),
        ("ended_at", _js(ended)),
        ("exit_code", _js(code)),
        ("signal", _js(signame)),
        ("argv", _js(argv)),
        ("cwd", _js(cwd)),
        ("log_file", _js(log_file)),
        ("meta", meta),
    ]
    try:
        _write_record(exits_dir, f"{pid}-{int(started_at)}.json", fields)
    except OSError as exc:
        posix.write(2, f"ohm-runner: cannot write exit record: {exc}\n".encode())
    how = f" ({signame})" if signame else ""
    _log_line(f"[ohm-runner] agent pid {pid} exited with code {code}{how}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
