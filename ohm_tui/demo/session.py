"""Start and stop a whole live demo: orchestrator, its agents, and every respawn.

``ohm demo``, the tests, the screenshots and the benchmarks all use this. Its one
promise is that ``stop()`` leaves no demo process behind: not the orchestrator,
not its agents, not agents ohm respawned in their own sessions from the demo's
state file, not ohm's runner wrappers around them. So a demo process is
recognised three ways: the orchestrator's process group, the
``OHM_DEMO_SESSION`` environment variable, and the state directory in the
command line (``--demo-dir DIR`` of agents, ``--state-dir DIR`` of the
orchestrator), which survives a respawn because ohm re-runs the same command.
No signal is sent without re-checking identity through a pidfd.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from ohm_tui.demo.orchestrator import CYCLE_SECONDS, PACKAGE_PARENT, SESSION_ENV
from ohm_tui.demo.orchestrator_db import CLAUDE_TIMEOUT

ORCHESTRATOR_MODULE = "ohm_tui.demo.orchestrator"


@dataclass(frozen=True, slots=True)
class DemoProcess:
    """A live process recognised as part of a demo, with its identity."""

    pid: int
    start_ticks: int  # /proc/<pid>/stat field 22: identity against PID reuse
    cmdline: tuple[str, ...]
    reason: str


class DemoSession:
    """One live demo in one state directory. A context manager; ``stop()`` is idempotent."""

    def __init__(
        self,
        state_dir: Path | str | None = None,
        *,
        seed: int = 7,
        speed: float = 1.0,
        max_agents: int = 6,
        freeze_every: float | None = None,
        freeze_for: float | None = None,
        remove_dir: bool | None = None,
        stop_timeout: float = 3.0,
        era: int = 1,
    ) -> None:
        if not speed > 0 or speed == float("inf"):
            raise ValueError(f"speed must be a finite number greater than 0, got {speed!r}")
        self._given_dir = Path(state_dir).resolve() if state_dir is not None else None
        self.state_dir: Path = self._given_dir or Path()
        # The orchestrator's root: it holds ``data/`` (the state dir) and ``tickets/``.
        # A temp-dir session lays out a whole root, so nothing lands beside it.
        self.root: Path = self.state_dir.parent
        if era not in (1, 2, 3):
            raise ValueError(f"era must be 1, 2 or 3, got {era!r}")
        self.era = era  # 1: JSON files; 2: agent_lifecycle; 3: claude sessions
        self.seed = seed
        self.speed = float(speed)
        self.max_agents = max_agents
        self.session_id = uuid.uuid4().hex
        self.remove_dir = remove_dir
        self.stop_timeout = stop_timeout
        self.freeze_threshold = max(20.0, 300.0 / self.speed)
        self.health_check_interval = max(1.0, 5.0 / self.speed)
        # A freeze must outlast ohm's threshold (plus a check or two) to be seen.
        self.freeze_every = freeze_every if freeze_every is not None else max(30.0, 180 / speed)
        self.freeze_for = (
            freeze_for
            if freeze_for is not None
            else max(
                400.0 / self.speed, self.freeze_threshold * 4 / 3 + 2 * self.health_check_interval
            )
        )
        self.process: subprocess.Popen[bytes] | None = None
        self._created_dir = False
        self._stopped = False

    # ------------------------------------------------------------ set-up
    @property
    def orchestrator_log(self) -> Path:
        return self.state_dir / "orchestrator.log"

    @property
    def agent_state_path(self) -> Path:
        return self.state_dir / "orchestrator" / "agent_state.json"

    @property
    def work_loop_state_path(self) -> Path:
        return self.state_dir / "orchestrator" / "work_loop_state.json"

    def orchestrator_argv(self) -> list[str]:
        """The orchestrator's command; also ohm's restart command for it."""
        return [
            sys.executable,
            "-m",
            ORCHESTRATOR_MODULE,
            "start",
            "--state-dir",
            str(self.state_dir),
            "--seed",
            str(self.seed),
            "--speed",
            f"{self.speed:g}",
            "--max-agents",
            str(self.max_agents),
            "--freeze-every",
            f"{self.freeze_every:g}",
            "--freeze-for",
            f"{self.freeze_for:g}",
            "--session-id",
            self.session_id,
            "--log-file",
            str(self.orchestrator_log),
            *(["--era", str(self.era)] if self.era != 1 else []),
        ]

    def env(self) -> dict[str, str]:
        """The environment demo processes run with (marked with the session id)."""
        env = dict(os.environ)
        env[SESSION_ENV] = self.session_id
        path = env.get("PYTHONPATH")
        env["PYTHONPATH"] = str(PACKAGE_PARENT) + (os.pathsep + path if path else "")
        return env

    def config_overrides(self) -> dict[str, Any]:
        """ohm config keys that fit this demo's speed (all real ``Config`` keys).

        Call after ``start()``: the state dir of a temp-dir session is made there.
        """
        s = self.speed
        return {
            "data_dir": str(self.state_dir),
            "heartbeat_log": "orchestrator.log",
            "heartbeat_interval": max(1.0, 2 * CYCLE_SECONDS / s),
            "orchestrator_freeze_threshold": self.freeze_threshold,
            "health_check_interval": self.health_check_interval,
            "orchestrator_restart_command": self.orchestrator_argv(),
            "orchestrator_restart_cwd": str(PACKAGE_PARENT),
            "orchestrator_match": [ORCHESTRATOR_MODULE, "start", str(self.state_dir)],
            "restart_grace_period": max(2.0, 10.0 / s),
            "restart_verify_timeout": max(10.0, 60.0 / s),
            "stop_grace_period": max(1.0, 5.0 / s),
            "respawn_backoff_base": 2.0 / s,
            "respawn_stable_after": max(10.0, 300.0 / s),
            "stalled_after": max(10.0, 120.0 / s),
            "flap_min_runtime": max(2.0, 30.0 / s),
            "flap_window": max(60.0, 900.0 / s),
            "crash_recent_window": max(60.0, 600.0 / s),
            "tickets_dir": "tickets",
            **({"claude_timeout": CLAUDE_TIMEOUT / s} if self.era == 3 else {}),
        }

    def write_config(self) -> Path:
        """Write ``ohm.toml`` into the state dir, so that ``ohm check --data-dir DIR``
        (or any other command) watches this demo with the demo's settings."""
        lines = ["# ohm settings for this demo (read by: ohm COMMAND --data-dir THIS_DIR)"]
        for key, value in self.config_overrides().items():
            if key != "data_dir":
                lines.append(f"{key} = {_toml_value(value)}")
        path = self.state_dir / "ohm.toml"
        path.write_text("\n".join(lines) + "\n")
        path.chmod(0o644)
        return path

    def start(self) -> DemoSession:
        """Start the orchestrator in its own session; returns ``self``."""
        if self.process is not None:
            raise RuntimeError("demo session already started")
        if self._given_dir is None:
            self.root = Path(tempfile.mkdtemp(prefix="ohm-demo-")).resolve()
            self.state_dir = self.root / "data"
            self.state_dir.mkdir()
            self._created_dir = True
        else:
            self.state_dir.mkdir(parents=True, exist_ok=True)
        if self.remove_dir is None:
            self.remove_dir = self._created_dir
        self._stopped = False
        self.write_config()
        with self.orchestrator_log.open("ab") as log:
            self.process = subprocess.Popen(
                self.orchestrator_argv(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=PACKAGE_PARENT,
                env=self.env(),
                start_new_session=True,
                close_fds=True,
            )
        atexit.register(self.stop)
        return self

    @property
    def running(self) -> bool:
        """Is the sample orchestrator still running?"""
        return self.process is not None and self.process.poll() is None

    def __enter__(self) -> DemoSession:
        return self.start() if self.process is None else self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # ------------------------------------------------------------ tear-down
    def stop(self) -> None:
        """Stop every demo process, then remove the temp root if asked. Idempotent."""
        if self._stopped or self.process is None:
            return
        self._stopped = True
        with contextlib.suppress(Exception):
            atexit.unregister(self.stop)
        proc = self.process
        if proc.returncode is None:
            # Not reaped by us, so its pid (the group id) cannot have been reused:
            # signalling the group is safe until we reap it below.
            pgid = proc.pid  # start_new_session: the leader's pid is the group id
            _killpg(pgid, signal.SIGTERM)
            _wait_exited(proc.pid, self.stop_timeout)
            _killpg(pgid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=self.stop_timeout)
        # Whatever escaped the group: respawns, restarted orchestrators, wrappers.
        for _ in range(5):
            if not kill_demo_processes(self.session_id, self.state_dir):
                break
        if self.remove_dir:
            # A root we made goes whole (tickets too); a given state dir goes alone.
            shutil.rmtree(self.root if self._created_dir else self.state_dir, ignore_errors=True)

    @property
    def tickets_dir(self) -> Path:
        """Where ohm mirrors this demo's bugs: ``tickets/`` beside ``data/``."""
        return self.root / "tickets"

    def survivors(self) -> list[DemoProcess]:
        """Demo processes still alive (empty after ``stop()``)."""
        return find_demo_processes(self.session_id, self.state_dir)


# ---------------------------------------------------------------- processes
def _killpg(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _read(path: str) -> bytes | None:
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except OSError:
        return None


def _start_ticks(pid: int) -> int | None:
    """Start time in clock ticks since boot; ``None`` for a gone or zombie process."""
    raw = _read(f"/proc/{pid}/stat")
    if raw is None:
        return None
    # The command name may hold spaces and parentheses: split after the last ")".
    fields = raw[raw.rfind(b")") + 2 :].split()
    if len(fields) < 20 or fields[0] == b"Z":
        return None
    try:
        return int(fields[19])
    except ValueError:
        return None


def _ancestors() -> set[int]:
    """This process and its parents: never ours to kill."""
    out = {os.getpid()}
    pid = os.getpid()
    while pid > 1:
        raw = _read(f"/proc/{pid}/stat")
        if raw is None:
            break
        try:
            pid = int(raw[raw.rfind(b")") + 2 :].split()[1])
        except (IndexError, ValueError):
            break
        out.add(pid)
    return out


def _mentions_dir(cmdline: tuple[str, ...], state_dir: str) -> bool:
    """True when an argument (or a word of one, for wrappers that pass a command
    as one string) is the state dir or a path inside it. Exact, so that a demo in
    ``/tmp/ohm-demo-ab`` never matches one in ``/tmp/ohm-demo-abc``."""
    inside = state_dir.rstrip(os.sep) + os.sep
    for arg in cmdline:
        for word in arg.replace("=", " ").split():
            word = word.strip("'\"")
            if word == state_dir or word.startswith(inside):
                return True
    return False


def _demo_reason(
    cmdline: tuple[str, ...], environ: bytes | None, session_id: str, state_dir: str
) -> str | None:
    if environ is not None and f"{SESSION_ENV}={session_id}".encode() in environ.split(b"\0"):
        return "session environment"
    if _mentions_dir(cmdline, state_dir):
        joined = " ".join(cmdline)
        if "--demo-dir" in joined:
            return "demo agent command line"
        if ORCHESTRATOR_MODULE in joined and "--state-dir" in joined:
            return "demo orchestrator command line"
    return None


def find_demo_processes(session_id: str, state_dir: Path | str) -> list[DemoProcess]:
    """Live processes of this user that belong to the demo (Linux ``/proc``)."""
    state = str(state_dir)
    skip = _ancestors()
    uid = os.getuid()
    found: list[DemoProcess] = []
    try:
        entries = os.listdir("/proc")
    except OSError:
        return found
    for name in entries:
        if not name.isdigit() or int(name) in skip:
            continue
        pid = int(name)
        try:
            if os.stat(f"/proc/{pid}").st_uid != uid:
                continue
        except OSError:
            continue
        ticks = _start_ticks(pid)
        raw_cmd = _read(f"/proc/{pid}/cmdline")
        if ticks is None or not raw_cmd:
            continue
        cmdline = tuple(a.decode("utf-8", "replace") for a in raw_cmd.split(b"\0") if a)
        reason = _demo_reason(cmdline, _read(f"/proc/{pid}/environ"), session_id, state)
        if reason:
            found.append(DemoProcess(pid, ticks, cmdline, reason))
    return found


def _signal_verified(p: DemoProcess, sig: signal.Signals) -> int | None:
    """Signal ``p`` if it is still the same process; returns a pidfd to wait on."""
    try:
        fd = os.pidfd_open(p.pid)
    except AttributeError:  # no pidfd: re-check identity right before the signal
        if _start_ticks(p.pid) == p.start_ticks:
            with contextlib.suppress(OSError):
                os.kill(p.pid, sig)
        return None
    except OSError:
        return None  # gone
    # The pidfd pins the process: if its identity matches now, we signal the right one.
    if _start_ticks(p.pid) != p.start_ticks:
        os.close(fd)
        return None
    try:
        signal.pidfd_send_signal(fd, sig)
    except OSError:
        os.close(fd)
        return None
    return fd


def _wait_exited(pid: int, timeout: float) -> None:
    """Wait until our child ``pid`` has exited, without reaping it."""
    try:
        fd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        deadline = time.monotonic() + timeout
        while _start_ticks(pid) is not None and time.monotonic() < deadline:
            time.sleep(0.05)
        return
    try:
        select.select([fd], [], [], timeout)
    finally:
        os.close(fd)


def _wait_gone(fds: list[int], timeout: float) -> list[int]:
    """Wait until the pidfds' processes exit; returns the fds still alive."""
    deadline = time.monotonic() + timeout
    alive = list(fds)
    while alive:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        ready, _, _ = select.select(alive, [], [], left)
        alive = [fd for fd in alive if fd not in ready]
    return alive


def kill_demo_processes(session_id: str, state_dir: Path | str, grace: float = 1.0) -> int:
    """SIGTERM then SIGKILL every demo process found; returns how many were found."""
    procs = find_demo_processes(session_id, state_dir)
    by_fd: dict[int, DemoProcess] = {}
    for p in procs:
        fd = _signal_verified(p, signal.SIGTERM)
        if fd is not None:
            by_fd[fd] = p
    try:
        for fd in _wait_gone(list(by_fd), grace):
            with contextlib.suppress(OSError):
                signal.pidfd_send_signal(fd, signal.SIGKILL)
        _wait_gone(list(by_fd), grace)
    finally:
        for fd in by_fd:
            os.close(fd)
    return len(procs)


def _toml_value(value: object) -> str:
    """TOML for the few value kinds a demo config holds (json strings are TOML strings)."""
    import json

    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(str(value))
