"""supervisord and circus, configured and run the way an operator would, for side-by-side figures.

Both come from the bench's own environment (``pip install .[bench]``), never from
ohm's runtime dependencies. Each daemon runs in the foreground as our child, with
its sockets in its own directory, and is stopped with SIGTERM (it stops its programs).
"""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

from bench.common import BIN, Procs

SUPERVISORD = str(BIN / "supervisord")
SUPERVISORCTL = str(BIN / "supervisorctl")
CIRCUSD = str(BIN / "circusd")
CIRCUSCTL = str(BIN / "circusctl")


class Supervisord:
    """supervisord 4.x with one ``[program:x]`` per agent; settings are supervisor's defaults
    (``startsecs=1``, ``startretries=3``, ``autorestart=unexpected``) unless given."""

    def __init__(self, root: Path, programs: dict[str, list[str]], **program_opts: str) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.root = root
        self.conf = root / "supervisord.conf"
        lines = [
            "[unix_http_server]",
            f"file={root / 'supervisor.sock'}",
            "[supervisord]",
            "nodaemon=true",
            f"logfile={root / 'supervisord.log'}",
            f"pidfile={root / 'supervisord.pid'}",
            f"childlogdir={root}",
            "[rpcinterface:supervisor]",
            "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
            "[supervisorctl]",
            f"serverurl=unix://{root / 'supervisor.sock'}",
        ]
        for name, argv in programs.items():
            lines += [
                f"[program:{name}]",
                f"command={shlex.join(argv)}",
                f"stdout_logfile={root / (name + '.log')}",
                "redirect_stderr=true",
            ]
            lines += [f"{k}={v}" for k, v in program_opts.items()]
        self.conf.write_text("\n".join(lines) + "\n")
        self.p: subprocess.Popen[bytes] | None = None

    def start(self, procs: Procs) -> int:
        self.p = procs.start([SUPERVISORD, "-c", str(self.conf)], cwd=self.root)
        return self.p.pid

    def states(self) -> dict[str, str]:
        """Program -> state (RUNNING, BACKOFF, FATAL...), as ``supervisorctl status`` says."""
        res = subprocess.run(
            [SUPERVISORCTL, "-c", str(self.conf), "status"],
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
        out = {}
        for line in res.stdout.splitlines():
            parts = line.split()
            if len(parts) >= 2:
                out[parts[0]] = parts[1]
        return out

    def stop(self, procs: Procs) -> None:
        if self.p is not None:
            procs.stop(self.p, grace=15.0)


class Circus:
    """circusd 0.19 with one ``[watcher:x]`` per agent (``numprocesses = 1``)."""

    def __init__(
        self,
        root: Path,
        programs: dict[str, list[str]],
        *,
        check_delay: float | None = None,
        max_retry: int | None = None,
    ) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.root = root
        self.ini = root / "circus.ini"
        self.endpoint = f"ipc://{root / 'endpoint'}"
        lines = [
            "[circus]",
            f"endpoint = {self.endpoint}",
            f"pubsub_endpoint = ipc://{root / 'pubsub'}",
            "statsd = false",
            f"logoutput = {root / 'circusd.log'}",
        ]
        if check_delay is not None:
            lines.append(f"check_delay = {check_delay:g}")
        for name, argv in programs.items():
            lines += [
                f"[watcher:{name}]",
                f"cmd = {shlex.join(argv)}",
                "numprocesses = 1",
                "copy_env = true",
                "stdout_stream.class = FileStream",
                f"stdout_stream.filename = {root / (name + '.log')}",
                "stderr_stream.class = FileStream",
                f"stderr_stream.filename = {root / (name + '.log')}",
            ]
            if max_retry is not None:
                lines.append(f"max_retry = {max_retry}")
        self.ini.write_text("\n".join(lines) + "\n")
        self.p: subprocess.Popen[bytes] | None = None

    def start(self, procs: Procs) -> int:
        self.p = procs.start([CIRCUSD, str(self.ini)], cwd=self.root)
        return self.p.pid

    def states(self) -> dict[str, str]:
        """Watcher -> ``active`` / ``stopped``, as ``circusctl status`` says."""
        res = subprocess.run(
            [CIRCUSCTL, "--endpoint", self.endpoint, "--timeout", "10", "status"],
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
        out = {}
        for line in res.stdout.splitlines():
            name, _, state = line.partition(":")
            if state:
                out[name.strip()] = state.strip()
        return out

    def stop(self, procs: Procs) -> None:
        if self.p is not None:
            procs.stop(self.p, grace=15.0)
