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

At 5,000 agents (the same directory, 4,000 more agents started), at 80x24:
- a key press, in process, measured as above;
- the console idle: ``ohm console`` on an 80x24 pty, CPU of its process (its engine
  included) and every byte it writes to the terminal, over one window after it has
  painted and settled, as figure 5 measures 50 agents.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

from bench.common import (
    BIN,
    Orchestrator,
    Procs,
    Row,
    Section,
    cpu_between,
    cpu_reading,
    fmt,
    rss_mb,
    stat_row,
    wait_until,
)
from bench.history import fill_bugs, fill_crashes
from bench.ptyterm import PtyProgram
from ohm_tui.engine.monitor import OrchestratorHealthMonitor

CRASH_ROWS = 100_000
BUGS = 1000
KEYS = ["down", "down", "down", "up", "s", "s", "s", "2", "down", "3", "down", "1", "end", "home"]
FLEET = 5000
SLICE = 5.0


def console_config(data: Path) -> dict[str, object]:
    # auto_fix off: the crashes the detection figures caused must not be respawned here.
    return {
        "data_dir": str(data),
        "orchestrator_match": ["no-orchestrator-in-this-bench"],
        "auto_fix": False,
    }


async def _measure(
    data: Path, frames: int, size: tuple[int, int] = (120, 40), rows: int = 0
) -> dict[str, Any]:
    from textual import events

    from ohm_tui.tui.app import make_app

    mon = OrchestratorHealthMonitor(console_config(data), name="bench-console")
    t0 = time.perf_counter()
    app = make_app(mon)
    apply_ms: list[float] = []
    original = app.dashboard.show_snapshot

    def timed_show(*args: Any) -> None:
        s = time.perf_counter()
        original(*args)
        apply_ms.append((time.perf_counter() - s) * 1000)

    app.dashboard.show_snapshot = timed_show  # type: ignore[method-assign,assignment]
    result: dict[str, Any] = {}
    try:
        async with app.run_test(size=size) as pilot:
            while app.frames < 1 or (
                rows and (app.snapshot is None or len(app.snapshot.agents) < rows)
            ):
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


def idle_console(procs: Procs, data: Path, work: Path, window: float) -> dict[str, Any]:
    """CPU (% of one core, per 5 s slice and over the window) and terminal bytes of an
    idle ``ohm console`` on an 80x24 pty, after it painted and settled."""
    cwd = work / "console-cwd"
    cwd.mkdir(exist_ok=True)
    (cwd / "ohm.toml").write_text("auto_fix = false\n")  # as in console_config
    term = PtyProgram(procs, [str(BIN / "ohm"), "console", "--data-dir", str(data)], cwd=str(cwd))
    try:
        wait_until(
            lambda: any(term.first_time(n) is not None for n in (b"worker", b"builder")),
            60,
            "console painted",
        )
        time.sleep(5.0)  # first frames and the engine's first checks of 5,000 agents
        slices: list[float] = []
        byte_slices: list[float] = []
        start = last = cpu_reading(term.pid)
        t_start = t_last = time.perf_counter()
        while time.perf_counter() - t_start < window - 1e-3:
            time.sleep(min(SLICE, window - (time.perf_counter() - t_start)))
            now = time.perf_counter()
            reading = cpu_reading(term.pid)
            slices.append(cpu_between(last, reading) / (now - t_last) * 100)
            byte_slices.append(term.bytes_between(t_last, now) / (now - t_last) / 1000)
            last, t_last = reading, now
        elapsed = t_last - t_start
        return {
            "cpu": cpu_between(start, last) / elapsed * 100,
            "cpu_slices": slices,
            "kbps": term.bytes_between(t_start, t_last) / elapsed / 1000,
            "kbps_slices": byte_slices,
            "elapsed": elapsed,
            "rss": rss_mb(term.pid),
        }
    finally:
        term.close(procs)


def large_fleet(sec: Section, orch: Orchestrator, data: Path, work: Path, quick: bool) -> None:
    """Start agents up to 5,000 in ``data`` (after ``large_history``), then time the console
    over them at 80x24: a key press in process, and the idle console on a pty."""
    try:
        _large_fleet(sec, orch, data, work, quick)
    except Exception as exc:  # report it in the table; the figures before it stand
        note = f"{type(exc).__name__}: {exc}"
        sec.rows.append(Row("6 console", "5,000 agents", "-", "-", "0", "-", "error", note))


def _large_fleet(sec: Section, orch: Orchestrator, data: Path, work: Path, quick: bool) -> None:
    t0 = time.perf_counter()
    state = data / "orchestrator" / "agent_state.json"
    have = len(json.loads(state.read_text()).get("active_agents", {}))
    orch.spawn_many(max(0, FLEET - have), "builder", ["sleep", "infinity"])
    sec.notes.append(f"started {FLEET - have} more agents in {time.perf_counter() - t0:.1f} s")
    res = asyncio.run(_measure(data, 4 if quick else 8, size=(80, 24), rows=FLEET))
    label = f"{res['agent_rows']:,} agents, {CRASH_ROWS // 1000}k crashes, {BUGS:,} bugs, 80x24"
    sec.rows.append(
        stat_row(
            "6 console",
            f"key press handled, {label}",
            res["keys"],
            "ms",
            100.0,
            note="each key: "
            + ", ".join(f"{k} {ms:.0f}" for k, ms in zip(KEYS, res["keys"], strict=False))
            + " ms",
        )
    )
    apply = res["apply"]
    sec.rows.append(
        stat_row(
            "6 console",
            f"applying a snapshot on the UI thread, {label}",
            apply[1:] or apply,
            "ms",
            None,
            note="frames after the first (the rows are built in the snapshot worker)",
        )
    )
    procs = Procs()
    try:
        idle = idle_console(procs, data, work, 10.0 if quick else 30.0)
    finally:
        procs.close()
    n = f"{idle['elapsed']:.0f} s"
    cpu = stat_row(
        "6 console",
        f"console idle (`ohm console`, 80x24 pty), {FLEET:,} agents: CPU of one core",
        idle["cpu_slices"],
        "%",
        3.0,
        note=f"its engine included (a full check every 30 s); RSS {idle['rss']:.1f} MB",
    )
    cpu.median, cpu.n = fmt(idle["cpu"], "%"), n
    cpu.verdict = "met" if idle["cpu"] <= 3.0 else "NOT met"
    sec.rows.append(cpu)
    out = stat_row(
        "6 console",
        f"idle console at 80x24: bytes written to the terminal, {FLEET:,} agents",
        idle["kbps_slices"],
        "KB/s",
        2.0,
        note="everything read from the pty master",
    )
    out.median, out.n = fmt(idle["kbps"], "KB/s"), n
    out.verdict = "met" if idle["kbps"] <= 2.0 else "NOT met"
    sec.rows.append(out)
