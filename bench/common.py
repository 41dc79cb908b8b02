"""What every benchmark section shares: result rows, statistics, processes, /proc readings.

Nothing here asserts a timing: the bench reports, people judge. Every process a
section starts is registered with a ``Procs`` and killed at the end, verified by
pidfd (a pid that was reused is never signalled).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
AGENTS = BENCH_DIR / "agents"
CRASHER = str(AGENTS / "crasher.py")
ORCHESTRATOR = str(AGENTS / "orchestrator.py")
PYTHON = sys.executable
BIN = Path(sys.executable).parent  # the bench venv's bin: ohm, supervisord, circusd
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


# ------------------------------------------------------------------ results
@dataclass(slots=True)
class Row:
    """One line of the results table."""

    figure: str
    what: str
    median: str
    spread: str  # "min - max"
    n: str
    target: str
    verdict: str  # met / NOT met / reference / pending / error
    note: str = ""


@dataclass(slots=True)
class Section:
    """What one benchmark section found: rows, plus notes for the report."""

    name: str
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0


def fmt(value: float, unit: str) -> str:
    if unit == "ms":
        return f"{value:.1f} ms" if value < 100 else f"{value:,.0f} ms"
    if unit == "s":
        return f"{value:.2f} s"
    if unit == "%":
        return f"{value:.3f} %"
    if unit == "MB":
        return f"{value:.1f} MB"
    if unit == "KB/s":
        return f"{value:.2f} KB/s"
    return f"{value:g} {unit}"


def stat_row(
    figure: str,
    what: str,
    samples: Sequence[float],
    unit: str,
    limit: float | None,
    *,
    target: str | None = None,
    note: str = "",
) -> Row:
    """A row from samples: median, min - max, and met when the median is within ``limit``."""
    if not samples:
        return Row(figure, what, "-", "-", "0", target or "-", "error", note or "no samples")
    med = statistics.median(samples)
    spread = f"{fmt(min(samples), unit)} - {fmt(max(samples), unit)}" if len(samples) > 1 else "-"
    if limit is None:
        verdict = "reference"
        tgt = target or "-"
    else:
        verdict = "met" if med <= limit else "NOT met"
        tgt = target or f"≤ {fmt(limit, unit)}"
    return Row(figure, what, fmt(med, unit), spread, str(len(samples)), tgt, verdict, note)


def render_markdown(rows: Sequence[Row]) -> str:
    head = ["figure", "what", "median", "min - max", "n", "target", "result", "notes"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r.figure, r.what, r.median, r.spread, r.n, r.target, r.verdict, r.note]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines)


# ------------------------------------------------------------------ waiting
def wait_until(
    predicate: Callable[[], object], timeout: float, what: str, interval: float = 0.002
) -> None:
    """Poll ``predicate`` until truthy; ``TimeoutError`` naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)


# ------------------------------------------------------------------ agent records
def read_record(path: Path) -> list[tuple[str, float, int]]:
    """``[(kind, epoch, pid)]`` from a crasher's record file (``start`` / ``death`` lines)."""
    out: list[tuple[str, float, int]] = []
    try:
        text = path.read_text()
    except OSError:
        return out
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] in ("start", "death"):
            with contextlib.suppress(ValueError):
                out.append((parts[0], float(parts[1]), int(parts[2])))
    return out


def respawn_gaps(events: list[tuple[str, float, int]]) -> list[float]:
    """Seconds from each death to the next start (the respawn latency), in record order."""
    gaps = []
    last_death: float | None = None
    for kind, t, _ in events:
        if kind == "death":
            last_death = t
        elif last_death is not None:
            gaps.append(t - last_death)
            last_death = None
    return gaps


def crasher_argv(record: Path, mode: str) -> list[str]:
    return [PYTHON, CRASHER, str(record), mode]


# ------------------------------------------------------------------ processes
class Procs:
    """Processes a section started; ``close`` kills what is left, oldest last."""

    def __init__(self) -> None:
        self.popens: list[subprocess.Popen[Any]] = []

    def start(self, argv: Sequence[str], **kw: Any) -> subprocess.Popen[Any]:
        kw.setdefault("stdin", subprocess.DEVNULL)
        kw.setdefault("stdout", subprocess.DEVNULL)
        kw.setdefault("stderr", subprocess.DEVNULL)
        p: subprocess.Popen[Any] = subprocess.Popen(list(argv), **kw)
        self.popens.append(p)
        return p

    def stop(self, p: subprocess.Popen[Any], sig: int = signal.SIGTERM, grace: float = 5.0) -> None:
        """Signal our child ``p`` (unreaped, so its pid is still its own), then reap it."""
        if p.poll() is None:
            with contextlib.suppress(OSError):
                p.send_signal(sig)
            try:
                p.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(OSError):
                    p.kill()
                p.wait(timeout=5)

    def close(self) -> None:
        for p in reversed(self.popens):
            self.stop(p)
        self.popens.clear()


def signal_pid(pid: int, sig: int) -> bool:
    """Signal ``pid`` through a pidfd (the pid cannot be reused under it). False if gone."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return False
    try:
        signal.pidfd_send_signal(fd, sig)
        return True
    except ProcessLookupError:
        return False
    finally:
        os.close(fd)


class Orchestrator:
    """The stand-in orchestrator (agents/orchestrator.py) as a child process."""

    def __init__(self, procs: Procs, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.p = procs.start(
            [PYTHON, ORCHESTRATOR, "start", "--data-dir", str(data_dir)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.pid = int(self._reply()["pid"])

    def _reply(self) -> dict[str, Any]:
        stdout: IO[str] | None = self.p.stdout
        assert stdout is not None
        line = stdout.readline()
        if not line:
            raise RuntimeError(f"the bench orchestrator exited (code {self.p.poll()})")
        reply: dict[str, Any] = json.loads(line)
        if "error" in reply:
            raise RuntimeError(f"bench orchestrator: {reply['error']}")
        return reply

    def request(self, **req: Any) -> dict[str, Any]:
        stdin = self.p.stdin
        assert stdin is not None
        stdin.write(json.dumps(req) + "\n")
        stdin.flush()
        return self._reply()

    def spawn(self, agent_type: str, task_id: str, argv: list[str]) -> int:
        return int(
            self.request(op="spawn", agent_type=agent_type, task_id=task_id, argv=argv)["pid"]
        )

    def spawn_many(self, n: int, agent_type: str, argv: list[str]) -> list[int]:
        return [
            int(p)
            for p in self.request(op="spawn_many", n=n, agent_type=agent_type, argv=argv)["pids"]
        ]

    def quit(self) -> None:
        """Kill its agents and let it exit."""
        if self.p.poll() is None:
            with contextlib.suppress(OSError, ValueError):
                assert self.p.stdin is not None
                self.p.stdin.write(json.dumps({"op": "quit"}) + "\n")
                self.p.stdin.close()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.p.wait(timeout=15)


# ------------------------------------------------------------------ /proc
def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads, live and exited), in seconds."""
    data = Path(f"/proc/{pid}/stat").read_bytes()
    rest = data[data.rfind(b")") + 2 :].split()
    return (int(rest[11]) + int(rest[12])) / CLK_TCK


def cpu_reading(pid: int) -> tuple[float, dict[int, int]]:
    """(utime + stime in s, {thread id: ns on CPU}) of a process, read together.

    Tick counts have 10 ms steps; the per-thread ``schedstat`` nanoseconds are exact
    but lose the time of a thread that ends in between (``cpu_between`` checks).
    """
    ticks = cpu_seconds(pid)
    threads: dict[int, int] = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            threads[int(tid)] = int(
                Path(f"/proc/{pid}/task/{tid}/schedstat").read_text().split()[0]
            )
    return ticks, threads


def cpu_between(a: tuple[float, dict[int, int]], b: tuple[float, dict[int, int]]) -> float:
    """CPU seconds between two ``cpu_reading``s: nanoseconds when every thread of the
    first reading is still there, else the (coarser) tick count."""
    if a[1] and set(a[1]) <= set(b[1]):
        return sum(b[1].values()) / 1e9 - sum(a[1].values()) / 1e9
    return b[0] - a[0]


def rss_mb(pid: int) -> float:
    data = Path(f"/proc/{pid}/statm").read_text().split()
    return int(data[1]) * PAGE / 1e6


def children_of(pid: int) -> list[int]:
    """Direct children of ``pid``, from /proc (for a daemon's helper processes)."""
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        with contextlib.suppress(OSError):
            data = Path(f"/proc/{name}/stat").read_bytes()
            if int(data[data.rfind(b")") + 2 :].split()[1]) == pid:
                out.append(int(name))
    return out


def reap_strays(marker: str, keep: frozenset[int] = frozenset()) -> int:
    """SIGKILL processes whose command line holds ``marker`` (the bench's own temporary
    work directory, so nothing else can match): agents that outlived their section,
    such as ones ohm respawned. Each is pinned with a pidfd and re-checked first."""
    killed = 0
    me = os.getpid()
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == me or int(name) in keep:
            continue
        pid = int(name)
        try:
            fd = os.pidfd_open(pid)
        except OSError:
            continue
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes()  # read after pinning it
            if marker.encode() in argv:
                signal.pidfd_send_signal(fd, signal.SIGKILL)
                killed += 1
        except OSError:
            pass
        finally:
            os.close(fd)
    return killed


@contextlib.contextmanager
def timed() -> Iterator[list[float]]:
    """``with timed() as t: ...`` then ``t[0]`` is the wall time in seconds."""
    box: list[float] = []
    start = time.perf_counter()
    try:
        yield box
    finally:
        box.append(time.perf_counter() - start)


def fd_counts(pid: int) -> tuple[int, int]:
    """(open fds, of which pidfds) of a process: a pidfd's link is ``anon_inode:[pidfd]``."""
    fds = pidfds = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        fds += 1
        with contextlib.suppress(OSError):
            if os.readlink(f"/proc/{pid}/fd/{fd}") == "anon_inode:[pidfd]":
                pidfds += 1
    return fds, pidfds


def thread_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


def cpu_window(pid: int, seconds: float, slice_s: float = 5.0) -> tuple[float, list[float]]:
    """CPU % of one core used by ``pid`` over the next ``seconds``: (the average, each
    ``slice_s`` slice), from per-thread nanoseconds (``cpu_reading``)."""
    start = last = cpu_reading(pid)
    t_start = t_last = time.perf_counter()
    slices: list[float] = []
    while time.perf_counter() - t_start < seconds - 1e-3:
        time.sleep(min(slice_s, seconds - (time.perf_counter() - t_start)))
        now, reading = time.perf_counter(), cpu_reading(pid)
        slices.append(cpu_between(last, reading) / (now - t_last) * 100)
        last, t_last = reading, now
    return cpu_between(start, last) / (t_last - t_start) * 100, slices


def percentile(samples: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``samples``, nearest rank."""
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def write_empty_state(data: Path) -> None:
    """An era-1 orchestrator's state before its first agent: ``ohm watch`` waits,
    creating nothing, in a directory that holds no orchestrator state yet."""
    orch = data / "orchestrator"
    orch.mkdir(parents=True, exist_ok=True)
    state = orch / "agent_state.json"
    if not state.exists():
        state.write_text(json.dumps({"active_agents": {}, "completed_agents": []}, indent=2))


def write_ohm_toml(path: Path, **keys: object) -> Path:
    """An ``ohm.toml`` with top-level keys (numbers and strings only)."""
    lines = [f"{k} = {json.dumps(v)}" for k, v in keys.items()]
    path.write_text("\n".join(lines) + "\n")
    return path
