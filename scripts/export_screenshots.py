"""Regenerate ``screenshots/*.svg`` from the real console running on the live demo.

    python scripts/export_screenshots.py [--out screenshots] [--seed 7] [--speed 10]

It starts a real ``DemoSession`` (a sample orchestrator whose agents really
crash), opens the real app on it with ``App.run_test``, waits until there is
something to see (crashes, a bug), then saves the main screen at 120x40 and at
80x24, a crash detail, the bug form and the help with ``App.save_screenshot``.
Every demo process is stopped on the way out.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from textual.pilot import Pilot

from ohm_tui.demo.session import DemoSession
from ohm_tui.engine.config import load_config
from ohm_tui.engine.monitor import OrchestratorHealthMonitor
from ohm_tui.tui.app import OhmApp, make_app
from ohm_tui.tui.screens.bug_form import BugFormScreen
from ohm_tui.tui.screens.crash_detail import CrashDetailScreen
from ohm_tui.tui.screens.help import HelpScreen

ROOT = Path(__file__).resolve().parents[1]


async def wait_for(
    pilot: Pilot[Any], predicate: Callable[[], object], timeout: float, what: str
) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"export_screenshots: no {what} within {timeout:g}s")
        await pilot.pause(0.05)


def interesting(app: OhmApp) -> bool:
    snap = app.snapshot
    return bool(
        snap is not None
        and len(snap.agents) >= 3
        and len(snap.crashes) >= 6
        and snap.bugs
        and any(c.bug_number for c in snap.crashes)
    )


async def shoot(app: OhmApp, out: Path) -> list[Path]:
    saved: list[Path] = []

    def save(name: str) -> None:
        saved.append(Path(app.save_screenshot(filename=name, path=str(out))))

    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: interesting(app), 90, "crashes and bugs from the demo")
        await pilot.pause(0.3)
        save("main-120x40.svg")

        await pilot.resize_terminal(80, 24)
        frames = app.frames
        await wait_for(pilot, lambda: app.frames >= frames + 1, 10, "frame at 80x24")
        await pilot.pause(0.3)
        save("main-80x24.svg")
        await pilot.resize_terminal(120, 40)

        await pilot.press("2")
        crashes = app.dashboard.query_one("#crashes-table")
        await wait_for(pilot, lambda: app.focused is crashes, 5, "timeline focus")
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, CrashDetailScreen), 5, "crash")
        await pilot.pause(0.3)
        save("crash-detail.svg")

        await pilot.press("b")  # the form, prefilled from this crash
        await wait_for(pilot, lambda: isinstance(app.screen, BugFormScreen), 5, "bug form")
        await pilot.pause(0.3)
        save("bug-form.svg")
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, CrashDetailScreen), 5, "back")
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is app.dashboard, 5, "dashboard")

        await pilot.press("question_mark")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen), 5, "help")
        await pilot.pause(0.3)
        save("help.svg")
    return saved


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "screenshots")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--speed", type=float, default=10.0)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    with DemoSession(seed=args.seed, speed=args.speed) as session:
        overrides = {**session.config_overrides(), "auto_fix": True}
        config = load_config(None, overrides=overrides, search_cwd=False)
        with OrchestratorHealthMonitor(config, name="screenshots") as monitor:
            app = make_app(monitor, demo=session)
            saved = asyncio.run(shoot(app, args.out))
    for path in saved:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
