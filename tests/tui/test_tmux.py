"""``ohm demo`` in a real 80x24 terminal (tmux): the panels draw, ``?`` opens the help,
``q`` exits and leaves no demo process behind."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from ohm_tui.demo.orchestrator import SESSION_ENV
from tests.helpers import wait_until

OHM = Path(sys.executable).parent / "ohm"

pytestmark = pytest.mark.skipif(
    shutil.which("tmux") is None, reason="tmux is not installed (apt-get install tmux)"
)


class Tmux:
    """A private tmux server (its own socket): the developer's sessions are never touched."""

    def __init__(self, socket: Path) -> None:
        self.socket = socket
        self.session = "ohm-demo-test"

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["tmux", "-S", str(self.socket), "-f", "/dev/null", *args],
            capture_output=True,
            text=True,
            timeout=10,
            check=check,
        )

    def screen(self) -> str:
        result = self.run("capture-pane", "-p", "-t", self.session, check=False)
        return result.stdout if result.returncode == 0 else ""

    def alive(self) -> bool:
        return self.run("has-session", "-t", self.session, check=False).returncode == 0

    def keys(self, *keys: str) -> None:
        self.run("send-keys", "-t", self.session, *keys)


@pytest.fixture
def tmux(tmp_path: Path) -> Iterator[Tmux]:
    t = Tmux(tmp_path / "tmux.sock")
    try:
        yield t
    finally:
        t.run("kill-server", check=False)


def demo_tree(root_pid: int) -> list[psutil.Process]:
    """The ohm process and everything under it (orchestrator, agents, runners)."""
    try:
        root = psutil.Process(root_pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def demo_session_ids(procs: list[psutil.Process]) -> set[str]:
    ids = set()
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            value = proc.environ().get(SESSION_ENV)
            if value:
                ids.add(value)
    return ids


def gone(proc: psutil.Process) -> bool:
    try:
        return not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE
    except psutil.Error:
        return True


def marked(session_ids: set[str]) -> list[int]:
    """Live processes carrying one of the demo sessions' marker (zombies count as gone)."""
    found = []
    for proc in psutil.process_iter(["pid", "status"]):
        with contextlib.suppress(psutil.Error):
            if proc.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            if proc.environ().get(SESSION_ENV) in session_ids:
                found.append(proc.pid)
    return found


def test_ohm_demo_in_a_real_80x24_terminal(tmux: Tmux) -> None:
    command = f"exec {OHM} demo --seed 7 --speed 10"
    tmux.run("new-session", "-d", "-s", tmux.session, "-x", "80", "-y", "24", command)
    tmux.run("set-option", "-t", tmux.session, "status", "off")
    pane_pid = int(tmux.run("display-message", "-p", "-t", tmux.session, "#{pane_pid}").stdout)
    seen: list[psutil.Process] = []
    try:
        size = tmux.run("display-message", "-p", "-t", tmux.session, "#{pane_width}x#{pane_height}")
        assert size.stdout.strip() == "80x24"

        def panels_drawn() -> bool:
            text = tmux.screen()
            return all(t in text for t in ("Agents", "Crash timeline", "Bugs", "poll "))

        wait_until(panels_drawn, timeout=30, message=f"three panels:\n{tmux.screen()}")
        lines = tmux.screen().splitlines()
        assert len(lines) <= 24 and all(len(line) <= 80 for line in lines)
        # The demo is running under the console: remember every process of it.
        wait_until(lambda: demo_session_ids(demo_tree(pane_pid)), timeout=15)
        seen = demo_tree(pane_pid)
        ids = demo_session_ids(seen)

        tmux.keys("?")
        wait_until(lambda: "ohm help" in tmux.screen(), timeout=10, message="help screen")
        assert "Respawn" in tmux.screen()
        tmux.keys("Escape")
        wait_until(lambda: "ohm help" not in tmux.screen(), timeout=10, message="help closed")

        tmux.keys("q")
        wait_until(lambda: not tmux.alive(), timeout=30, message="ohm demo exited on q")
        wait_until(lambda: not psutil.pid_exists(pane_pid), timeout=10)
        for proc in seen:
            wait_until(
                lambda proc=proc: gone(proc),  # type: ignore[misc]
                timeout=10,
                message=f"demo process {proc.pid} {proc.info if hasattr(proc, 'info') else ''}",
            )
        assert marked(ids) == []
    finally:
        for proc in seen:  # only on failure is anything left to stop
            with contextlib.suppress(psutil.Error):
                proc.kill()
