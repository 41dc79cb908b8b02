"""The fleet view and ``ohm check --remote`` against three real ``ohm watch --listen``.

Each host is a real ``ohm watch`` process on its own data dir, with a real agent
process in a real-format ``agent_state.json``; one of them is killed mid-test.
"""

from __future__ import annotations

import json
import shlex
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest

from ohm_tui.cli.main import main
from ohm_tui.engine import timeutil
from ohm_tui.fleet.hosts import FleetError, Host, load_fleet
from ohm_tui.tui.fleet.app import FleetApp, make_fleet_app
from ohm_tui.tui.fleet.command_screen import CommandScreen
from ohm_tui.tui.keyed_table import KeyedTable
from ohm_tui.tui.screens.crash_detail import CrashDetailScreen
from tests.functional.test_prometheus import free_port, state_dir
from tests.helpers import ProcessReaper, wait_until
from tests.tui.conftest import wait_for

SLEEPER = "import time; time.sleep(600)"


@dataclass
class Watched:
    name: str
    url: str
    proc: subprocess.Popen[bytes]
    agent_pid: int


def _up(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/api/v1/status", timeout=2) as resp:
            return int(resp.status) == 200
    except OSError:
        return False


@pytest.fixture
def fleet(tmp_path: Path, reaper: ProcessReaper) -> Iterator[dict[str, Watched]]:
    """``one`` and ``two`` healthy, ``three`` with a frozen loop (critical); each runs an agent."""
    started: dict[str, Watched] = {}
    for name, age in (("one", 0.0), ("two", 0.0), ("three", 3600.0)):
        data = state_dir(tmp_path / name, loop_age=age)
        agent = reaper.spawn_py(SLEEPER)
        argv = [sys.executable, "-c", SLEEPER]
        entry = {
            "pid": agent.pid,
            "agent_type": f"architect-{name}",
            "task_id": f"spec-{name}",
            "command": shlex.join(argv),
            "started_at": timeutil.iso_local_naive(psutil.Process(agent.pid).create_time()),
            "status": "running",
        }
        state = data / "orchestrator" / "agent_state.json"
        state.write_text(
            json.dumps({"active_agents": {str(agent.pid): entry}, "completed_agents": []})
        )
        port = free_port()
        proc = subprocess.Popen(
            [sys.executable, "-m", "ohm_tui", "watch", "--data-dir", str(data), "--interval",
             "0.5", "--no-fix", "--listen", f"127.0.0.1:{port}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
        )  # fmt: skip
        reaper.add(proc)
        started[name] = Watched(name, f"http://127.0.0.1:{port}", proc, agent.pid)
    for w in started.values():
        wait_until(lambda w=w: _up(w.url), timeout=30, interval=0.1, message=f"{w.name} answers")
    try:
        yield started
    finally:
        for w in started.values():
            if w.proc.poll() is None:
                w.proc.send_signal(signal.SIGTERM)
        for w in started.values():
            w.proc.wait(timeout=15)


def kill(w: Watched) -> None:
    w.proc.kill()
    w.proc.wait(timeout=10)


def check(*urls: str) -> int:
    args = ["check"]
    for u in urls:
        args += ["--remote", u]
    return main(args)


def status_of(url: str) -> str:
    with urllib.request.urlopen(url + "/api/v1/status", timeout=5) as resp:
        return str(json.loads(resp.read())["status"])


def test_check_remote_exit_codes_are_the_fleets_worst(
    fleet: dict[str, Watched], capsys: pytest.CaptureFixture[str]
) -> None:
    one, two, three = fleet["one"], fleet["two"], fleet["three"]
    wait_until(lambda: status_of(three.url) == "critical", timeout=20, message="three critical")
    assert status_of(one.url) == status_of(two.url) == "healthy"
    assert check(one.url, two.url) == 0
    assert capsys.readouterr().out.startswith("FLEET HEALTHY: 0 of 2 hosts not healthy")
    assert check(one.url, two.url, three.url) == 2
    out = capsys.readouterr().out
    assert out.startswith("FLEET CRITICAL: 1 of 3 hosts not healthy")
    kill(two)
    assert check(one.url, two.url) == 3  # unreachable is unknown ...
    out = capsys.readouterr().out
    assert "FLEET UNKNOWN" in out and "unreachable (last answered" not in out  # never answered
    assert check(one.url, two.url, three.url) == 2  # ... unless another host is critical
    capsys.readouterr()
    assert main(["check", "--remote", two.url, "--json"]) == 3
    doc = json.loads(capsys.readouterr().out)
    assert doc["status"] == "unknown" and doc["hosts"][0]["status"] == "unreachable"
    assert main(["check", "--remote", "ftp://nowhere"]) == 3  # bad input is unknown too


def test_fleet_file_is_checked_like_the_config(tmp_path: Path, fleet: dict[str, Watched]) -> None:
    token = tmp_path / "token"
    token.write_text("x" * 32)
    token.chmod(0o600)
    path = tmp_path / "fleet.toml"
    path.write_text(
        f'[[host]]\nname = "one"\nurl = "{fleet["one"].url}"\ntoken_file = "token"\n'
        f'ssh = "ops@orch-1"\ndata_dir = "/srv/orch/data"\n'
        f'[[host]]\nname = "three"\nurl = "{fleet["three"].url}"\n'
    )
    path.chmod(0o600)
    hosts = load_fleet(path)
    assert [h.name for h in hosts] == ["one", "three"]
    assert hosts[0].token == "x" * 32 and hosts[0].ssh_target == "ops@orch-1"
    # A token is sent even to a host that needs none: the answer is the same.
    wait_until(lambda: status_of(fleet["three"].url) == "critical", timeout=20, message="critical")
    assert main(["check", "--fleet", str(path)]) == 2
    path.chmod(0o666)
    with pytest.raises(FleetError, match="writable by"):
        load_fleet(path)
    path.chmod(0o600)
    token.chmod(0o644)
    with pytest.raises(FleetError, match="readable by"):
        load_fleet(path)


def agent_key(app: FleetApp, host: str, pid: int) -> str | None:
    table = app.screen.query_one("#fleet-agents", KeyedTable)
    return next((k for k in table.keys if k.startswith(f"{host}|{pid}@")), None)


def header(app: FleetApp) -> str:
    from textual.widgets import Static

    return str(app.screen_main.query_one("#fleet-header", Static).content)


async def test_fleet_console_over_three_hosts_one_killed(fleet: dict[str, Watched]) -> None:
    hosts = [Host(w.name, w.url) for w in fleet.values()]
    app = make_fleet_app(hosts, timeout=2.0)
    app.poll_interval = 0.2
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(
            pilot,
            lambda: all(agent_key(app, w.name, w.agent_pid) for w in fleet.values()),
            timeout=20,
            message="every host's agent is listed with its host",
        )
        table = app.screen.query_one("#fleet-agents", KeyedTable)
        key = agent_key(app, "two", fleet["two"].agent_pid)
        assert key is not None
        assert table.cell_text(key, "host") == "two"
        assert table.cell_text(key, "status").startswith("running")
        await wait_for(pilot, lambda: "three critical" in header(app), timeout=20)
        assert header(app).startswith("FLEET CRITICAL")
        assert "one healthy" in header(app) and "two healthy" in header(app)

        kill(fleet["two"])
        await wait_for(
            pilot,
            lambda: "two unreachable (last answered" in header(app),
            timeout=20,
            message="the killed host is unreachable",
        )
        await wait_for(
            pilot,
            lambda: "seconds ago)" in header(app) or "second ago)" in header(app),
            timeout=20,
            message="with how long ago it last answered",
        )
        status = table.cell_text(key, "status")
        assert status.startswith("unknown (host unreachable; was running)")
        assert "crash" not in status
        crashes = app.screen.query_one("#fleet-crashes", KeyedTable)
        assert not any(k.startswith("two|") for k in crashes.keys)  # not a crash

        # Actions stay on the host: r shows the command, and sends nothing.
        table.focus()
        table.move_to_key(key)
        await pilot.press("r")
        await wait_for(pilot, lambda: isinstance(app.screen, CommandScreen))
        assert isinstance(app.screen, CommandScreen)
        assert app.screen.command == f"ssh 127.0.0.1 ohm respawn {fleet['two'].agent_pid}"
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, CommandScreen))
        assert psutil.pid_exists(fleet["two"].agent_pid)

        # Filter by host.
        await pilot.press("slash", *"one")
        await wait_for(pilot, lambda: all(k.startswith("one|") for k in table.keys))
        assert table.keys
        await pilot.press("escape")
        await wait_for(pilot, lambda: len(table.keys) == 3)


async def test_crash_detail_comes_from_the_host_that_owns_it(
    fleet: dict[str, Watched],
) -> None:
    one = fleet["one"]
    psutil.Process(one.agent_pid).kill()  # a real death of a running agent: a crash on one
    app = make_fleet_app([Host(w.name, w.url) for w in fleet.values()], timeout=2.0)
    app.poll_interval = 0.2
    async with app.run_test(size=(120, 40)) as pilot:
        crashes = app.screen.query_one("#fleet-crashes", KeyedTable)
        await wait_for(
            pilot,
            lambda: any(k.startswith("one|") for k in crashes.keys),
            timeout=20,
            message="the crash on one is listed",
        )
        assert all(k.startswith("one|") for k in crashes.keys)
        key = crashes.keys[0]
        assert crashes.cell_text(key, "host") == "one"
        await pilot.press("2", "enter")
        await wait_for(pilot, lambda: isinstance(app.screen, CrashDetailScreen))
        assert isinstance(app.screen, CrashDetailScreen)
        assert app.screen.crash.agent_pid == one.agent_pid


def test_console_listen_serves_while_the_console_runs(
    tmp_path: Path, reaper: ProcessReaper
) -> None:
    """``ohm console --listen`` on a real terminal (a pty) answers /api/v1 like ohm watch."""
    import os
    import pty

    data = state_dir(tmp_path / "console", loop_age=0.0)
    port = free_port()
    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ohm_tui", "console", "--data-dir", str(data),
             "--listen", f"127.0.0.1:{port}"],
            stdin=slave, stdout=slave, stderr=slave, start_new_session=True,
            env={**os.environ, "TERM": "xterm-256color", "COLUMNS": "80", "LINES": "24"},
        )  # fmt: skip
        reaper.add(proc)
        url = f"http://127.0.0.1:{port}"
        threading_drain(master)
        wait_until(lambda: _up(url), timeout=30, interval=0.1, message="the console serves /api")
        assert status_of(url) == "healthy"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
        assert not _up(url)  # the endpoint stopped with the console
    finally:
        os.close(slave)
        os.close(master)


def threading_drain(fd: int) -> Any:
    """Read the console's terminal output so it never blocks on a full pty."""
    import os
    import threading

    def loop() -> None:
        while True:
            try:
                if not os.read(fd, 65536):
                    return
            except OSError:
                return

    t = threading.Thread(target=loop, daemon=True)
    t.start()
    return t
