"""The CLI's tables in a real 80-column terminal, on real data with CJK and emoji.

``ohm`` runs as a real process on a pseudo-terminal of 80 columns (so
``isatty()`` is true, as for a person), over a state directory where a real
agent named in Chinese really crashed with an emoji in its ImportError, a live
agent logs an emoji line, and a bug was filed with such a title. Widths are
measured in terminal cells (``rich.cells``), which is what the terminal draws.
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import select
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from rich.cells import cell_len

from ohm_tui.cli.table import Column, layout, render_table
from ohm_tui.engine import timeutil
from tests.helpers import ProcessReaper, wait_until

CJK_TYPE = "架构师"
CJK_TASK = "规格-20"
LIVE_TYPE = "代码开发者"
MESSAGE = (
    "无法导入 SkillNames 🔥 from 'coffee_maker.autonomous.技能加载器' "
    "while loading the roadmap for the next sprint"
)
LOG_LINE = "正在处理 spec-7 🚀 step 3 of 12: writing the technical specification document"
BUG_TITLE = "架构师 crashes at import 🔥 every time the roadmap changes in the night"

AGENT = """\
import os, sys, time
logs, kind, task, mode = sys.argv[1:5]
fd = os.open(os.path.join(logs, f"{kind}-{task}-{os.getpid()}.log"),
             os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
os.dup2(fd, 1)
os.dup2(fd, 2)
print(f"{kind} starting on {task}", flush=True)
if mode == "crash":
    raise ImportError(MESSAGE)
print(LOG_LINE, flush=True)
time.sleep(120)
""".replace("MESSAGE", repr(MESSAGE)).replace("LOG_LINE", repr(LOG_LINE))


@dataclass
class Data:
    root: Path
    data: Path
    crashed_pid: int
    live_pid: int


def _entry(pid: int, kind: str, task: str, argv: list[str], started: float) -> dict[str, object]:
    return {
        "pid": pid,
        "agent_type": kind,
        "task_id": task,
        "task_type": "create_spec",
        "command": " ".join(argv),
        "started_at": timeutil.iso_local_naive(started),
        "status": "running",
    }


def _ohm(*argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``ohm`` with stdout a pipe (not a terminal)."""
    env = {k: v for k, v in os.environ.items() if k != "OHM_DEBUG"} | {"COLUMNS": "80"}
    return subprocess.run(
        [sys.executable, "-m", "ohm_tui", *argv],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


def at_terminal(*argv: str, cwd: Path, columns: int = 80) -> str:
    """``ohm`` on a real pseudo-terminal ``columns`` wide; what it printed there."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    env = {k: v for k, v in os.environ.items() if k != "OHM_DEBUG"}
    env |= {"COLUMNS": str(columns), "LINES": "24", "TERM": "xterm-256color"}
    err = cwd / "stderr.txt"
    with err.open("w") as err_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ohm_tui", *argv],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=slave,
            stderr=err_file,
        )
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if not ready:
                if proc.poll() is not None:
                    break
                continue
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the child closed its side
                break
            if not data:
                break
            chunks.append(data)
        assert proc.wait(timeout=30) == 0, err.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    assert "Traceback" not in err.read_text()
    return b"".join(chunks).decode().replace("\r\n", "\n")


@pytest.fixture
def cjk_data(tmp_path: Path, reaper: ProcessReaper) -> Iterator[Data]:
    """A real state dir: one crashed agent, one live one, a bug; all named in CJK/emoji."""
    data = tmp_path / "data"
    logs = data / "logs"
    logs.mkdir(parents=True)
    (data / "ohm.toml").write_text(
        f'orchestrator_match = ["ohm-test-orchestrator-{tmp_path.name}"]\n'
    )
    loop = data / "orchestrator" / "work_loop_state.json"
    loop.parent.mkdir()
    loop.write_text(json.dumps({"last_update": time.time(), "active_tasks": {}}))
    script = tmp_path / "agent.py"
    script.write_text(AGENT)

    crash_argv = [sys.executable, str(script), str(logs), CJK_TYPE, CJK_TASK, "crash"]
    crash_started = time.time()
    crashed = subprocess.Popen(crash_argv, stdin=subprocess.DEVNULL)
    assert crashed.wait(timeout=30) == 1  # a real ImportError, reaped: no zombie

    live_argv = [sys.executable, str(script), str(logs), LIVE_TYPE, "spec-7", "live"]
    live_started = time.time()
    live = reaper.add(subprocess.Popen(live_argv, stdin=subprocess.DEVNULL))
    live_log = logs / f"{LIVE_TYPE}-spec-7-{live.pid}.log"
    wait_until(lambda: live_log.exists() and LOG_LINE in live_log.read_text(), timeout=20)

    state = {
        "active_agents": {
            str(crashed.pid): _entry(crashed.pid, CJK_TYPE, CJK_TASK, crash_argv, crash_started),
            str(live.pid): _entry(live.pid, LIVE_TYPE, "spec-7", live_argv, live_started),
        },
        "completed_agents": [],
    }
    (data / "orchestrator" / "agent_state.json").write_text(json.dumps(state))
    d = str(data)
    assert _ohm("check", "--data-dir", d, cwd=tmp_path).returncode in (1, 2)  # records the crash
    filed = _ohm("bug", "file", "--title", BUG_TITLE, "--priority", "High", "--data-dir", d,
                 cwd=tmp_path)  # fmt: skip
    assert filed.returncode == 0, filed.stderr
    yield Data(tmp_path, data, crashed.pid, live.pid)


def _rows(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def _assert_fits(lines: list[str], width: int) -> None:
    for line in lines:
        assert cell_len(line) <= width, f"{cell_len(line)} cells: {line!r}"


def test_every_table_fits_80_columns_with_its_key_columns_whole(cjk_data: Data) -> None:
    d, cwd = str(cjk_data.data), cjk_data.root

    lines = _rows(at_terminal("crashes", "--data-dir", d, cwd=cwd))
    _assert_fits(lines, 80)
    header, row = lines[0], next(line for line in lines if str(cjk_data.crashed_pid) in line)
    assert header.split()[:2] == ["TIME", "AGENT"] and "MESSAGE" in header.split()
    assert f"{CJK_TYPE} [{cjk_data.crashed_pid}]" in row  # key columns whole, never cut
    assert "ImportError" in row and (row.startswith("now") or " ago " in row)
    assert "无法导入 SkillNames 🔥" in row  # the long text is last, cut at the edge
    assert row.endswith("…")

    lines = _rows(at_terminal("agents", "--data-dir", d, cwd=cwd))
    print("\n".join(lines))
    _assert_fits(lines, 80)
    row = next(line for line in lines if line.startswith(str(cjk_data.live_pid)))
    assert LIVE_TYPE in row and "running" in row and "正在处理 spec-7 🚀" in row
    assert lines[0].split()[-3:] == ["LAST", "LOG", "LINE"]

    lines = _rows(at_terminal("bugs", "--data-dir", d, cwd=cwd))
    _assert_fits(lines, 80)
    row = next(line for line in lines if "BUG-" in line)
    assert "High" in row and "open" in row and "架构师 crashes at import 🔥" in row

    lines = _rows(at_terminal("events", "--last", "1h", "--data-dir", d, cwd=cwd))
    _assert_fits(lines, 80)
    row = next(line for line in lines if "crashed" in line)
    assert "ago" in row or row.startswith("now")


def test_piped_or_wide_output_is_never_cut(cjk_data: Data) -> None:
    d, cwd = str(cjk_data.data), cjk_data.root
    piped = _ohm("crashes", "--data-dir", d, cwd=cwd)  # COLUMNS=80, but a pipe
    assert piped.returncode == 0, piped.stderr
    assert MESSAGE in piped.stdout and "…" not in piped.stdout
    assert "ROOT CAUSE" in piped.stdout and CJK_TASK in piped.stdout

    wide = at_terminal("crashes", "--wide", "--data-dir", d, cwd=cwd)
    assert MESSAGE in wide and "ROOT CAUSE" in wide and "…" not in wide

    agents = _ohm("agents", "--data-dir", d, cwd=cwd)
    assert LOG_LINE in agents.stdout and "MEMORY" in agents.stdout


def test_layout_drops_low_priority_columns_before_cutting_key_ones() -> None:
    cols = [
        Column("TIME"),
        Column("AGENT", min_width=20),
        Column("TASK", priority=1, min_width=16),
        Column("ACTION", priority=2),
        Column("MESSAGE", min_width=20, long=True),
    ]
    rows = [["2 minutes ago", "架构师 [4242]", "规格-20", "respawned 1/3, BUG-003", "🔥" * 60]]
    text = render_table(cols, rows, width=60)
    _assert_fits(text.splitlines(), 60)
    head, row = text.splitlines()
    assert head.split() == ["TIME", "AGENT", "TASK", "MESSAGE"]  # ACTION went first
    assert row.startswith("2 minutes ago  架构师 [4242]  规格-20")
    # The widths come out in cells: the CJK agent is 13 cells, not 9 characters.
    assert layout(cols, [13, 13, 7, 22, 120], 60) == {0: 13, 1: 13, 2: 7, 4: 21}
    # The long text is cut to its floor before an agent name loses a cell.
    assert layout(cols, [13, 23, 7, 22, 120], 70) == {0: 13, 1: 23, 2: 7, 4: 21}
    # Far too narrow for even the key columns: each line is still cut to fit.
    _assert_fits(render_table(cols, rows, width=20).splitlines(), 20)
