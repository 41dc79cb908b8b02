"""``python -m bench``: every figure of issue 6, one table. Run it as ``bash bench/run``.

Sections run one after another, the timing-sensitive ones first and alone; the
million-row history database is filled in the background while the bench only
waits (on the peers' whole-second timers and the idle window). A section that
fails is reported as ``error`` in the table; the others still run.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from bench import (
    b_demo,
    b_detect,
    b_endure,
    b_history,
    b_idle,
    b_lifecycle,
    b_peers,
    b_respawn,
    b_scale,
    b_storm,
    b_web,
)
from bench.common import BENCH_DIR, REPO, Row, Section, reap_strays, render_markdown

SECTIONS = [
    "respawn",
    "detect",
    "peers",
    "idle",
    "scale",
    "lifecycle",
    "demo",
    "history",
    "web",
    "storm",
    "endurance",
]


def _machine() -> str:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores ({model or platform.machine()}), Linux {platform.release()}"


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def _commit() -> str:
    try:
        out = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        return out.stdout.strip() + (" + local changes" if dirty.stdout.strip() else "")
    except OSError:
        return "unknown"


def _load() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def say(*parts: object, end: str = "\n") -> None:
    """Progress goes to stderr; stdout gets the table alone."""
    print(*parts, end=end, file=sys.stderr, flush=True)


def _quiet_engine_logs(work: Path) -> None:
    """The engine's alerts (bugs filed, gave up...) go to a file, not into the table."""
    handler = logging.FileHandler(work / "ohm-engine.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    logger = logging.getLogger("ohm")
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bash bench/run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer samples, ~1.5 min")
    parser.add_argument(
        "--only", metavar="NAMES", help=f"comma-separated sections of: {', '.join(SECTIONS)}"
    )
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args(argv)
    # The endurance run takes half an hour: only when asked for by name.
    default = [s for s in SECTIONS if s != "endurance"]
    chosen = default if not args.only else [s.strip() for s in args.only.split(",")]
    unknown = sorted(set(chosen) - set(SECTIONS))
    if unknown:
        parser.error(f"unknown section(s): {', '.join(unknown)}")

    work = Path(tempfile.mkdtemp(prefix="ohm-bench-"))
    _quiet_engine_logs(work)
    started = time.perf_counter()
    load_before = _load()
    say(f"ohm bench: work directory {work}")

    fill = None
    sections: list[Section] = []

    def section(name: str, fn: Callable[[], Section]) -> None:
        say(f"  {name} ...", end="")
        t0 = time.perf_counter()
        try:
            sec = fn()
        except Exception as exc:  # one broken section must not hide the others
            sec = Section(name)
            sec.rows.append(
                Row(name, f"section {name}", "-", "-", "0", "-", "error", f"{exc!r}"[:300])
            )
            (work / f"{name}-error.txt").write_text(traceback.format_exc())
        keep: frozenset[int] = frozenset([fill[0].pid]) if fill is not None else frozenset()
        strays = reap_strays(f"{work}/", keep)
        if strays:
            sec.notes.append(f"{strays} leftover process(es) of this section stopped")
        sec.seconds = time.perf_counter() - t0
        sections.append(sec)
        say(f" {sec.seconds:.1f} s")

    try:
        if "respawn" in chosen:
            section("respawn", lambda: b_respawn.run(work, args.quick))
        if "detect" in chosen:
            section("detect", lambda: b_detect.run(work, args.quick))
        if "history" in chosen:
            fill = b_history.start_fill(work, args.quick)
        if "peers" in chosen:
            section("peers", lambda: b_peers.run(work, args.quick))
        if "idle" in chosen:
            section("idle", lambda: b_idle.run(work, args.quick))
        if fill is not None:
            say("  waiting for the history database ...", end="")
            t0 = time.perf_counter()
            fill[0].wait()
            say(f" {time.perf_counter() - t0:.1f} s")
        if "scale" in chosen:
            section("scale", lambda: b_scale.run(work, args.quick))
        if "demo" in chosen:
            section("demo", lambda: b_demo.run(work, args.quick))
        if "lifecycle" in chosen:
            section("lifecycle", lambda: b_lifecycle.run(work, args.quick))
        if "web" in chosen:
            section("web", lambda: b_web.run(work, args.quick))
        if "history" in chosen and fill is not None:
            history_fill = fill
            section("history", lambda: b_history.run(work, args.quick, history_fill))
        if "storm" in chosen:
            section("storm", lambda: b_storm.run(work, args.quick))
        if "endurance" in chosen:
            section("endurance", lambda: b_endure.run(work, args.quick))
    finally:
        if fill is not None and fill[0].poll() is None:
            fill[0].kill()
            fill[0].wait()

    total = time.perf_counter() - started
    rows = [r for s in sections for r in s.rows]
    order = {f: i for i, f in enumerate(["1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11"])}
    rows.sort(key=lambda r: order.get(r.figure.split()[0], 99))
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    header = [
        "# ohm benchmark results",
        "",
        f"- run: {stamp}, `bash bench/run{' --quick' if args.quick else ''}`"
        f"{' --only ' + args.only if args.only else ''}, {total:.0f} s in all",
        f"- machine: {_machine()}; load average before {load_before}, after {_load()}",
        f"- Python {platform.python_version()}; ohm {_version('ohm-tui')} at {_commit()}; "
        f"supervisor {_version('supervisor')}; circus {_version('circus')}",
        "- median over many events unless the n column says otherwise; min - max beside it;"
        " the result compares the median with the target. Timings are wall-clock and the"
        " machine is shared, so run-to-run spread is real.",
        "",
        "",
    ]
    notes = [f"- {s.name}: {n}" for s in sections for n in s.notes]
    text = "\n".join(header) + render_markdown(rows) + "\n"
    if notes:
        text += "\nNotes:\n" + "\n".join(notes) + "\n"
    print(text)
    results = BENCH_DIR / "results"
    results.mkdir(exist_ok=True)
    (results / "latest.md").write_text(text)
    if not args.quick and not args.only:
        (BENCH_DIR / "RESULTS.md").write_text(text)
    also = "" if args.quick or args.only else " and bench/RESULTS.md"
    say(f"written to {results / 'latest.md'}{also}")
    if args.keep:
        say(f"kept {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if all(r.verdict != "error" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
