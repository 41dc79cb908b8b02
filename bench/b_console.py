"""Figure 6: the console over a large history (1,000 live agents, 100,000 crash rows,
1,000 bugs), in process with Textual's ``run_test`` and end to end on a pty.

In process (headless, 120x40):
- first full paint: from creating the app to the first snapshot drawn on the screen;
- applying a snapshot: ``DashboardScreen.show_snapshot`` timed on the UI thread,
  for the first frame and the frames after it;
- a key press: from the key event to the screen having handled it and composed the
  update (``pilot.press`` itself sleeps at least 40 ms to wait for idleness, so the
  bench posts the key and waits for the screen's message queues instead).

End to end: ``ohm console`` on an 80x24 pty, from the process start to the first
agent row on the terminal.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from bench.common import BIN, Procs, Row, Section, fmt, stat_row
from bench.history import fill_bugs, fill_crashes
from bench.ptyterm import PtyProgram
from ohm_tui.engine.monitor import OrchestratorHealthMonitor

CRASH_ROWS = 100_000
BUGS = 1000
KEYS = ["down", "down", "down", "up", "s", "s", "s", "2", "down", "3", "down", "1", "end", "home"]


def console_config(data: Path) -> dict[str, object]:
    # auto_fix off: the crashes the detection figures caused must not be respawned here.
    return {
        "data_dir": str(data),
        "orchestrator_match": ["no-orchestrator-in-this-bench"],
        "auto_fix": False,
    }


async def _measure(data: Path, frames: int) -> dict[str, Any]:
    from textual import events

    from ohm_tui.tui.app import make_app

    mon = OrchestratorHealthMonitor(console_config(data), name="bench-console")
    t0 = time.perf_counter()
    app = make_app(mon)
    apply_ms: list[float] = []
    original = app.dashboard.show_snapshot

    def timed_show(snapshot: Any) -> None:
        s = time.perf_counter()
        original(snapshot)
        apply_ms.append((time.perf_counter() - s) * 1000)

    app.dashboard.show_snapshot = timed_show  # type: ignore[method-assign]
    result: dict[str, Any] = {}
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            while app.frames < 1:
                await asyncio.sleep(0.002)
            await pilot._wait_for_screen()
            app.screen._on_timer_update()  # compose what changed now, not at the next tick
            result["first_paint"] = time.perf_counter() - t0
            result["agent_rows"] = len(app.snapshot.agents) if app.snapshot else 0
            app.refresh_interval = 0.2
            deadline = time.monotonic() + 60
            while app.frames < frames and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            app.paused = True  # keys are timed without a frame arriving in between
            await asyncio.sleep(0.3)
            key_ms = []
            for key in KEYS:
                key_ms.append(await _press(app, pilot, events, key))
            result["keys"] = key_ms
            result["apply"] = list(apply_ms)
    finally:
        mon.close()
    return result


async def _press(app: Any, pilot: Any, events: Any, key: str) -> float:
    char = key if len(key) == 1 else None
    s = time.perf_counter()
    app._driver.send_message(events.Key(key, char))
    await pilot._wait_for_screen()
    await pilot._wait_for_screen()  # messages the key's handler posted
    app.screen._on_timer_update()
    return (time.perf_counter() - s) * 1000


def pty_first_paint(procs: Procs, data: Path, work: Path, needle: bytes) -> float | None:
    """Seconds from starting ``ohm console`` on an 80x24 pty to ``needle`` on the terminal."""
    cwd = work / "console-cwd"
    cwd.mkdir(exist_ok=True)
    (cwd / "ohm.toml").write_text("auto_fix = false\n")  # as in console_config
    term = PtyProgram(procs, [str(BIN / "ohm"), "console", "--data-dir", str(data)], cwd=str(cwd))
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            t = term.first_time(needle)
            if t is not None:
                return t - term.started
            if term.p.poll() is not None:
                return None
            time.sleep(0.01)
        return None
    finally:
        term.close(procs)


def large_history(sec: Section, data: Path, work: Path, quick: bool) -> None:
    """Fill ``data``'s database, then time the console over it (1,000 agents are live)."""
    now = time.time()
    t0 = time.perf_counter()
    db = data / "orchestrator.db"
    fill_crashes(db, CRASH_ROWS, newest=now - 60, span=7 * 86400)
    fill_bugs(db, BUGS, now=now)
    sec.notes.append(
        f"wrote {CRASH_ROWS:,} crash rows and {BUGS:,} bugs in {time.perf_counter() - t0:.1f} s"
    )
    try:
        import textual  # noqa: F401
    except ImportError as exc:
        for what in ("first full paint", "applying a snapshot", "key press handled"):
            sec.rows.append(Row("6 console", what, "-", "-", "0", "-", "pending", str(exc)))
        return
    try:
        res = asyncio.run(_measure(data, 6 if quick else 10))
    except Exception as exc:  # the console is another helper's work in progress
        for what in ("first full paint", "applying a snapshot", "key press handled"):
            sec.rows.append(
                Row(
                    "6 console", what, "-", "-", "0", "-", "pending", f"{type(exc).__name__}: {exc}"
                )
            )
        return
    label = f"{res['agent_rows']:,} agents, {CRASH_ROWS // 1000}k crashes, {BUGS:,} bugs"
    sec.rows.append(
        stat_row(
            "6 console",
            f"first full paint, in process (run_test 120x40), {label}",
            [res["first_paint"]],
            "s",
            1.5,
            note="app created -> first snapshot composed on screen",
        )
    )
    apply = res["apply"]
    later = apply[1:] or apply
    sec.rows.append(
        stat_row(
            "6 console",
            f"applying a snapshot on the UI thread, {label}",
            later,
            "ms",
            30.0,
            note=f"frames after the first; the first took {fmt(apply[0], 'ms')}" if apply else "",
        )
    )
    sec.rows.append(
        stat_row(
            "6 console",
            f"key press handled, {label}",
            res["keys"],
            "ms",
            50.0,
            note="each key: "
            + ", ".join(f"{k} {ms:.0f}" for k, ms in zip(KEYS, res["keys"], strict=False))
            + " ms",
        )
    )
    procs = Procs()
    try:
        paint = [pty_first_paint(procs, data, work, b"worker") for _ in range(1 if quick else 3)]
    finally:
        procs.close()
    got = [p for p in paint if p is not None]
    sec.rows.append(
        stat_row(
            "6 console",
            f"first full paint, end to end (`ohm console` on an 80x24 pty), {label}",
            got,
            "s",
            1.5,
            note="process start -> first agent row on the terminal"
            + ("" if len(got) == len(paint) else f"; {len(paint) - len(got)} run(s) never painted"),
        )
    )
