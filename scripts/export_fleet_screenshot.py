"""Regenerate ``screenshots/fleet-120x40.svg``: the fleet view over three live demos.

    python scripts/export_fleet_screenshot.py [--out screenshots]

Three real ``DemoSession``s (sample orchestrators whose agents really crash), each
watched by a real monitor serving its endpoint (as ``ohm watch --listen``) on a
loopback port. The fleet console polls all three; once it shows agents and
crashes, the third host's endpoint is stopped, and the screenshot is taken when
the header shows it unreachable with the time since it last answered.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from pathlib import Path

from ohm_tui.demo.session import DemoSession
from ohm_tui.engine.config import load_config
from ohm_tui.engine.monitor import OrchestratorHealthMonitor
from ohm_tui.fleet.hosts import Host
from ohm_tui.fleet.snapshot import HostStatus
from ohm_tui.tui.fleet.app import FleetApp, make_fleet_app
from ohm_tui.web.access import parse_listen
from ohm_tui.web.server import WebServer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from export_screenshots import ROOT, wait_for

NAMES = ["orch-1", "orch-2", "orch-3"]


def ready(app: FleetApp) -> bool:
    snap = app.snapshot
    return bool(
        snap is not None
        and all(h.reachable and h.agents for h in snap.hosts)
        and sum(len(h.crashes) for h in snap.hosts) >= 4
    )


def silent(app: FleetApp) -> bool:
    snap = app.snapshot
    view = snap.host(NAMES[-1]) if snap else None
    return bool(
        snap
        and view
        and view.status is HostStatus.UNREACHABLE
        and view.last_ok_at
        and snap.taken_at - view.last_ok_at >= 3
    )


async def shoot(app: FleetApp, servers: list[WebServer], out: Path) -> Path:
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: ready(app), 120, "agents and crashes on every host")
        servers[-1].stop()
        await wait_for(pilot, lambda: silent(app), 30, "the stopped host shown unreachable")
        await pilot.pause(0.3)
        return Path(app.save_screenshot(filename="fleet-120x40.svg", path=str(out)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "screenshots")
    parser.add_argument("--speed", type=float, default=10.0)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        servers: list[WebServer] = []
        hosts: list[Host] = []
        for i, name in enumerate(NAMES):
            session = stack.enter_context(DemoSession(seed=7 + i, speed=args.speed))
            overrides = {**session.config_overrides(), "auto_fix": True}
            config = load_config(None, overrides=overrides, search_cwd=False)
            monitor = stack.enter_context(OrchestratorHealthMonitor(config, name=name))
            server = WebServer(monitor, parse_listen("127.0.0.1:0"))
            monitor.start()
            server.start()
            stack.callback(server.stop)
            servers.append(server)
            hosts.append(Host(name, server.url, ssh=name))
        app = make_fleet_app(hosts, timeout=2.0)
        print(asyncio.run(shoot(app, servers, args.out)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
