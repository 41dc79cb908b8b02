"""Spawning agents through ``runner.py``, and the children and warm spare that takes.

Split from ``procs.py``: the process table and verified signals live there;
this module owns what ohm *starts*. A ``Spawner`` (one per monitor) holds its
runner children (reaped only through its own Popen objects) and one warm spare
runner; ``OrchestratorHealthMonitor.stop()`` closes it. The only process-wide
thing left is a weak index of live spawners (``live_spawners``, for test teardown).
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import select
import signal
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ohm_tui.engine.system.children import Children
from ohm_tui.engine.system.exits import exit_record_path
from ohm_tui.engine.system.procs import RUNNER_PATH, create_time, ticks_to_epoch

log = logging.getLogger(__name__)


# ----------------------------------------------------------------- spawning
@dataclass(slots=True)
class SpawnResult:
    """A started agent. ``pid``/``create_time`` are the AGENT's, not the runner's."""

    pid: int
    create_time: float  # same clock as RawProc.start_time
    started_at: float  # wall time the runner took right after the spawn
    runner_pid: int
    log_file: str
    argv: list[str]
    cwd: str
    exit_file: str = ""  # where the runner will write the exit record

    @property
    def key(self) -> str:
        """The agent-run identity ``"<pid>@<int(started_at)>"``."""
        return f"{self.pid}@{int(self.started_at)}"


SPAWN_TIMEOUT = 5.0
_DIR_MODE = 0o750
_LOG_MODE = 0o640


def _python() -> str:
    exe = sys.executable
    if exe and os.path.exists(exe):
        return exe
    import shutil

    found = shutil.which("python3") or shutil.which("python")
    if not found:
        raise OSError("cannot find a Python interpreter to run the agent runner")
    return found


def _runner_cmd(*args: str) -> list[str]:
    # -S: no site (no site-packages scan), -E: ignore PYTHON* env, -P: do not put
    # the engine directory first on sys.path (its modules would shadow stdlib).
    return [_python(), "-S", "-E", "-P", RUNNER_PATH, *args]


def _read_status(fd: int, timeout: float) -> bytes:
    """The runner's one status line; ``b""`` on EOF or timeout."""
    buf = b""
    deadline = time.monotonic() + timeout
    poller = select.poll()
    poller.register(fd, select.POLLIN | select.POLLHUP)
    while b"\n" not in buf:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not poller.poll(remaining * 1000.0):
            return b""
        chunk = os.read(fd, 65536)
        if not chunk:
            return buf if b"\n" in buf else b""
        buf += chunk
    return buf.split(b"\n", 1)[0]


def _kill_runner(popen: subprocess.Popen[bytes], children: Children | None = None) -> None:
    """SIGKILL a runner we started and its process group (the agent too), then reap it."""
    # Not yet reaped, so its pid (and so its process group id) cannot be reused.
    if popen.returncode is None:
        with contextlib.suppress(OSError):
            os.killpg(popen.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            popen.wait(timeout=5.0)
    if children is not None:
        children.forget(popen.pid)


def _make_dir(path: Path) -> None:
    path.mkdir(mode=_DIR_MODE, parents=True, exist_ok=True)


class _Spare:
    """A runner started ahead of need, blocked reading its request."""

    __slots__ = ("popen", "req_w", "status_r")

    def __init__(self) -> None:
        status_r, status_w = os.pipe2(os.O_CLOEXEC)
        req_r, req_w = os.pipe2(os.O_CLOEXEC)
        try:
            self.popen: subprocess.Popen[bytes] = subprocess.Popen(
                _runner_cmd("--status-fd", str(status_w), "--request-fd", str(req_r)),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                pass_fds=(status_w, req_r),
                start_new_session=True,
                cwd="/",
            )
        except BaseException:
            for fd in (status_r, req_w):
                os.close(fd)
            raise
        finally:
            os.close(status_w)
            os.close(req_r)
        self.req_w = req_w
        self.status_r = status_r

    def discard(self) -> None:
        """Let it go: EOF on its request pipe makes an idle spare exit at once."""
        for fd in (self.req_w, self.status_r):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self.req_w = self.status_r = -1
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=2.0)
        if self.popen.poll() is None:
            _kill_runner(self.popen)


# An index only (each Spawner owns its state): see ``live_spawners``.
_live: weakref.WeakSet[Spawner] = weakref.WeakSet()
_live_lock = threading.Lock()

# The next spare starts this long after a spawn: starting a Python process right
# away competed for the CPU with the agent's own start-up (a respawn's largest part).
PREWARM_DELAY = 0.05


def _encode_request(tokens: list[str]) -> bytes:
    return b"\0".join(t.encode("utf-8", "surrogateescape") for t in tokens)


@dataclass(slots=True)
class _Request:
    """A checked spawn request: the runner's options and where things go."""

    argv: list[str]
    opts: list[str]
    cwd: str
    log_path: Path
    exits_path: Path


def _prepare(
    argv: list[str],
    cwd: str | os.PathLike[str] | None,
    log_file: str | os.PathLike[str],
    exits_dir: str | os.PathLike[str],
    env: Mapping[str, str] | None,
    meta: Mapping[str, Any] | None,
) -> _Request:
    """Check a spawn request (bad input raises before anything starts); make its dirs."""
    if isinstance(argv, (str, bytes)) or not argv or not all(isinstance(a, str) for a in argv):
        raise ValueError(f"argv must be a non-empty list of strings, got {argv!r}")
    argv = list(argv)
    if any("\0" in a for a in argv):
        raise ValueError("argv must not contain NUL characters")
    if env is not None:
        for k, v in env.items():
            if not (isinstance(k, str) and isinstance(v, str)) or not k or "=" in k:
                raise ValueError(f"invalid environment variable {k!r}")
            if "\0" in k or "\0" in v:
                raise ValueError(f"environment variable {k!r} contains a NUL character")
    log_path = Path(log_file).expanduser().absolute()
    exits_path = Path(exits_dir).expanduser().absolute()
    run_cwd = os.path.abspath(os.path.expanduser(os.fspath(cwd))) if cwd else os.getcwd()
    if not os.path.isdir(run_cwd):
        raise FileNotFoundError(
            errno.ENOENT, f"cannot start {argv[0]!r}: working directory does not exist", run_cwd
        )
    _make_dir(log_path.parent)
    _make_dir(exits_path)
    meta_text = json.dumps(dict(meta or {}), default=str, separators=(",", ":"))
    opts = [
        "--exits-dir",
        str(exits_path),
        "--log",
        str(log_path),
        "--cwd",
        run_cwd,
        "--meta",
        meta_text,
    ]
    return _Request(argv, opts, run_cwd, log_path, exits_path)


def _warm_spawn(
    children: Children,
    spare: _Spare,
    opts: list[str],
    argv: list[str],
    env: Mapping[str, str] | None,
) -> tuple[subprocess.Popen[bytes] | None, bytes]:
    """Hand the request to a spare runner; ``(None, b"")`` if it cannot take it."""
    tokens = [*opts, "--env-exact"]
    for k, v in (os.environ if env is None else env).items():
        tokens += ["--env", f"{k}={v}"]
    try:
        view = memoryview(_encode_request([*tokens, "--", *argv]))
        while view:
            view = view[os.write(spare.req_w, view) :]
        os.close(spare.req_w)
        spare.req_w = -1
    except (OSError, UnicodeError) as exc:
        log.debug("spare runner unusable (%s); starting a fresh one", exc)
        spare.discard()
        return None, b""
    popen = spare.popen
    children.register(popen)
    try:
        line = _read_status(spare.status_r, SPAWN_TIMEOUT)
    finally:
        os.close(spare.status_r)
        spare.status_r = -1
    if not line:
        _kill_runner(popen, children)  # kills its process group: an agent it may have started too
        return None, b""
    return popen, line


def _cold_spawn(
    children: Children,
    opts: list[str],
    argv: list[str],
    log_path: Path,
    env: Mapping[str, str] | None,
) -> tuple[subprocess.Popen[bytes], bytes]:
    status_r, status_w = os.pipe2(os.O_CLOEXEC)
    try:
        log_fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, _LOG_MODE)
        try:
            popen: subprocess.Popen[bytes] = subprocess.Popen(
                _runner_cmd("--status-fd", str(status_w), *opts, "--", *argv),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log_fd,  # a runner that fails before it reports says why in the log
                pass_fds=(status_w,),
                start_new_session=True,
                env=dict(env) if env is not None else None,
                cwd="/",
            )
        finally:
            os.close(log_fd)
        os.close(status_w)
        status_w = -1
        children.register(popen)
        return popen, _read_status(status_r, SPAWN_TIMEOUT)
    finally:
        if status_w >= 0:
            os.close(status_w)
        os.close(status_r)


def _finish_spawn(
    children: Children, popen: subprocess.Popen[bytes], line: bytes, req: _Request
) -> SpawnResult:
    argv, cwd, log_path, exits_path = req.argv, req.cwd, req.log_path, req.exits_path
    status: Any = None
    if line:
        try:
            status = json.loads(line)
        except ValueError:
            status = None
    if not isinstance(status, dict):
        _kill_runner(popen, children)
        raise OSError(
            f"agent runner did not report a pid within {SPAWN_TIMEOUT:g}s "
            f"(exit code {popen.returncode}); see {log_path}"
        )
    if "error" in status:
        code = status.get("errno")
        with contextlib.suppress(subprocess.TimeoutExpired):
            popen.wait(timeout=SPAWN_TIMEOUT)  # it writes the exit record, then exits
        if popen.poll() is None:
            _kill_runner(popen, children)
        children.forget(popen.pid)
        msg = f"cannot start {argv[0]!r} (cwd {cwd}): {status['error']}"
        if isinstance(code, int) and code > 0:
            raise OSError(code, msg)  # FileNotFoundError / PermissionError by errno
        raise OSError(msg)
    try:
        pid = int(status["pid"])
        started_at = float(status["started_at"])
        ticks = status.get("start_ticks")
    except (KeyError, TypeError, ValueError):
        _kill_runner(popen, children)
        raise OSError(f"agent runner sent a malformed status line: {line[:200]!r}") from None
    ct = ticks_to_epoch(int(ticks)) if isinstance(ticks, int) else create_time(pid)
    return SpawnResult(
        pid=pid,
        create_time=ct if ct is not None else started_at,
        started_at=started_at,
        runner_pid=popen.pid,
        log_file=str(log_path),
        argv=argv,
        cwd=cwd,
        exit_file=str(exit_record_path(exits_path, pid, started_at)),
    )


def live_spawners() -> list[Spawner]:
    """Every Spawner not yet garbage-collected: for test teardown, which must close the
    spares of monitors a test made and never stopped. The engine never uses it."""
    with _live_lock:
        return list(_live)


class Spawner:
    """Starts agents through the runner; owns the runners it started and one warm spare.

    One per monitor. ``close()`` (the monitor's ``stop()``) discards the idle spare,
    joins its refill thread and reaps runners that have ended. Runners still holding
    an agent are left running: the agent is the orchestrator's and outlives ohm.
    """

    def __init__(self, *, prewarm: bool = True, name: str = "") -> None:
        self.name = name
        self.children = Children()
        self._lock = threading.Lock()
        self._spare: _Spare | None = None
        self._refill: threading.Thread | None = None
        self._prewarm_enabled = prewarm
        self._closed = False
        with _live_lock:
            _live.add(self)

    @property
    def spare_pid(self) -> int | None:
        """The idle spare runner's pid, if one is waiting."""
        spare = self._spare
        return spare.popen.pid if spare is not None else None

    def threads(self) -> list[threading.Thread]:
        """This spawner's threads that are still alive (the spare's refill)."""
        refill = self._refill
        return [refill] if refill is not None and refill.is_alive() else []

    def set_prewarm(self, enabled: bool) -> None:
        """Keep one runner started ahead (default on). Off also discards the current spare."""
        self._prewarm_enabled = enabled
        if not enabled:
            self._discard_spare()

    def prewarm(self) -> None:
        """Start the spare runner now, so that even the first spawn is fast.

        A spawn refills the spare by itself; a monitor calls this at start (which
        also reopens a spawner its ``stop()`` closed). No-op when a spare is waiting
        already or pre-warming is off.
        """
        with self._lock:
            self._closed = False
        self._fill()

    def close(self, timeout: float = 10.0) -> None:
        """Discard the idle spare and stop refilling it; reap runners that ended.

        Never touches a runner that holds an agent. Spawning still works after
        ``close()`` (cold, with no spare left behind).
        """
        with self._lock:
            self._closed = True
            refill = self._refill
        if refill is not None and refill is not threading.current_thread():
            refill.join(timeout)  # a spare being started now would outlive this call
        self._discard_spare()
        self.children.reap()

    def reap_children(self) -> list[tuple[int, int]]:
        """Reap runners this spawner started that have exited: ``(pid, returncode)`` each."""
        return self.children.reap()

    def child_count(self) -> int:
        """How many runners this spawner started are not yet reaped."""
        return self.children.count()

    def spawn(
        self,
        argv: list[str],
        *,
        cwd: str | os.PathLike[str] | None,
        log_file: str | os.PathLike[str],
        exits_dir: str | os.PathLike[str],
        env: Mapping[str, str] | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> SpawnResult:
        """Start ``argv`` under ``runner.py`` in its own session; return the agent's identity.

        Output (stdout and stderr) goes to ``log_file`` in append mode, never to a
        pipe. ``env`` is the complete environment (as for subprocess; ``None``:
        ours). The agent survives ohm; the runner records its exit code in
        ``exits_dir``. Raises ``FileNotFoundError``/``PermissionError`` when the
        executable or ``cwd`` cannot be used, ``OSError`` when the runner fails.
        """
        req = _prepare(argv, cwd, log_file, exits_dir, env, meta)
        popen: subprocess.Popen[bytes] | None = None
        line = b""
        spare = self._take_spare() if self._prewarm_enabled else None
        if spare is not None:
            popen, line = _warm_spawn(self.children, spare, req.opts, req.argv, env)
        if popen is None:
            popen, line = _cold_spawn(self.children, req.opts, req.argv, req.log_path, env)
        result = _finish_spawn(self.children, popen, line, req)
        self._fill_soon()
        return result

    def _discard_spare(self) -> None:
        with self._lock:
            spare, self._spare = self._spare, None
        if spare is not None:
            spare.discard()

    def _take_spare(self) -> _Spare | None:
        with self._lock:
            spare, self._spare = self._spare, None
        if spare is not None and spare.popen.poll() is not None:
            spare.discard()
            return None
        return spare

    def _fill(self) -> None:
        """Start a spare unless one waits, pre-warming is off or the spawner is closed."""
        with self._lock:
            if self._spare is not None or self._closed or not self._prewarm_enabled:
                return
        try:
            fresh = _Spare()
        except OSError as exc:
            log.warning("could not start a spare agent runner: %s", exc)
            return
        with self._lock:
            keep = self._spare is None and self._prewarm_enabled and not self._closed
            if keep:
                self._spare = fresh
        if not keep:
            fresh.discard()

    def _fill_later(self) -> None:
        time.sleep(PREWARM_DELAY)
        self._fill()

    def _fill_soon(self) -> None:
        """Start the next spare off the caller's path (a respawn returns ~1 ms sooner)."""
        with self._lock:
            if self._spare is not None or self._closed or not self._prewarm_enabled:
                return
            if self._refill is not None and self._refill.is_alive():
                return
            name = f"ohm-prewarm:{self.name}" if self.name else "ohm-prewarm"
            self._refill = threading.Thread(target=self._fill_later, name=name, daemon=True)
            self._refill.start()  # under the lock: ``close()`` never joins an unstarted thread
