"""An idle ``ohm console`` on a real 80x24 terminal (a pty, as over SSH) writes only
what changed: while nothing on screen changes, no panel is repainted.

Over SSH every repaint is bytes on the wire (the bench's "idle bytes over SSH"
figure). The window is counted in the console's own frames, not in seconds: the
engine checks every second and the header shows the time of the last check, so
each new "checked HH:MM:SS" on the terminal is one more snapshot the console drew.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import select
import struct
import subprocess
import sys
import termios
import threading
import time
from pathlib import Path

from tests.helpers import ProcessReaper, wait_until
from tests.tui.conftest import StateDir

OHM = Path(sys.executable).parent / "ohm"
# A quiet agent: one log line, then asleep (no CPU or memory jitter to redraw).
QUIET_AGENT = """\
import os, sys, time
logs, kind, task = sys.argv[1:4]
with open(os.path.join(logs, f"{kind}-{task}-{os.getpid()}.log"), "a") as log:
    print(f"{kind} starting on {task}", file=log, flush=True)
time.sleep(3600)
"""
HEADER_ROWS = {1, 2}  # the status strip: its "checked" time changes with every check
FRAMES = 3
_CUP = re.compile(rb"\x1b\[(\d+);(\d+)H")
_ESCAPE = re.compile(rb"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[^\[\]])")
_CHECKED = re.compile(rb"checked (\d\d:\d\d:\d\d)")


class PtyTerminal:
    """A program on a pseudo-terminal of a given size; a thread keeps every byte it writes."""

    def __init__(self, argv: list[str], reaper: ProcessReaper, cols: int = 80, rows: int = 24):
        self.master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        env = dict(os.environ, TERM="xterm-256color", COLORTERM="truecolor")
        env["COLUMNS"], env["LINES"] = str(cols), str(rows)
        self.proc = subprocess.Popen(
            argv, stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True
        )
        reaper.add(self.proc)
        os.close(slave)
        self._lock = threading.Lock()
        self._data = bytearray()
        self._thread = threading.Thread(target=self._drain, daemon=True)
        self._thread.start()

    def _drain(self) -> None:
        while True:
            ready, _, _ = select.select([self.master], [], [], 0.1)
            if not ready:
                if self.proc.poll() is not None:
                    return
                continue
            try:
                chunk = os.read(self.master, 65536)
            except OSError:  # the program closed the terminal (EIO)
                return
            if not chunk:
                return
            with self._lock:
                self._data += chunk

    def output(self) -> bytes:
        with self._lock:
            return bytes(self._data)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=10)
        self._thread.join(2.0)
        with contextlib.suppress(OSError):
            os.close(self.master)


def rows_written(output: bytes) -> dict[int, int]:
    """Screen row -> visible bytes written there (escape sequences and cursor moves aside)."""
    written: dict[int, int] = {}
    row = 0
    for part in re.split(rb"(\x1b\[\d+;\d+H)", output):
        move = _CUP.fullmatch(part)
        if move:
            row = int(move.group(1))
            continue
        for line_no, line in enumerate(_ESCAPE.sub(b"", part).split(b"\n")):
            visible = line.replace(b"\r", b"")
            if visible:
                written[row + line_no] = written.get(row + line_no, 0) + len(visible)
    return written


def checks_shown(output: bytes) -> list[bytes]:
    """The distinct "checked HH:MM:SS" times the header has drawn, in order."""
    seen: list[bytes] = []
    for match in _CHECKED.finditer(output):
        if not seen or seen[-1] != match.group(1):
            seen.append(match.group(1))
    return seen


def test_an_idle_console_repaints_only_the_check_time(
    state_dir: StateDir, reaper: ProcessReaper
) -> None:
    """Young agents, an orchestrator heartbeat: before, every frame redrew the agents
    table ("4 seconds" -> "6 seconds") and the poll age; now neither ticks under a minute."""
    state_dir.script.write_text(QUIET_AGENT)
    for n in range(3):
        state_dir.start_agent("architect", f"spec-{n}")
    loop_state = state_dir.data / "orchestrator" / "work_loop_state.json"
    loop_state.write_text(f'{{"last_update": {time.time()}}}')
    config = state_dir.root / "ohm.toml"
    config.write_text(
        f'data_dir = "{state_dir.data}"\nhealth_check_interval = 1.0\n'
        'orchestrator_match = ["no-such-orchestrator-for-this-test"]\nauto_fix = false\n'
    )
    term = PtyTerminal([str(OHM), "console", "--config", str(config)], reaper)
    try:
        wait_until(lambda: b"architect" in term.output(), 30, 0.05, "the console painted")
        # Settle: first frames, column fitting and the first checks are allowed to paint.
        wait_until(lambda: len(checks_shown(term.output())) >= 3, 30, 0.05, "three checks")
        start = len(term.output())
        wait_until(
            lambda: len(checks_shown(term.output()[start:])) >= FRAMES + 1,
            30,
            0.05,
            f"{FRAMES} more checks drawn",
        )
        window = term.output()[start:]
    finally:
        term.close()
    written = rows_written(window)
    print(f"{len(window)} bytes over {FRAMES}+ frames; rows written: {written}")
    assert set(written) <= HEADER_ROWS, f"idle, yet rows outside the header repainted: {written}"
    # The header's two lines at most, once a frame, with their colours.
    assert len(window) <= (FRAMES + 1) * 2 * 80 * 12, len(window)
