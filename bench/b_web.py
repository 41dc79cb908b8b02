"""Figure 10: the HTTP endpoint (``ohm watch --listen``) at scale and under load.

- ``/metrics`` scrape time with 1,000 live agents (the ``scale`` set-up: ``sleep
  infinity`` agents listed by the stand-in orchestrator): wall time of one GET on a
  fresh connection, as Prometheus scrapes. The API's one-second answer cache is
  emptied before each scrape (the bench peeks), so every figure includes rendering.
- Crash detection (figure 1's method) idle, then while ``HAMMERS`` client threads (in
  another process, as real clients are) GET ``/api/v1/status``, ``agents``,
  ``crashes`` and ``/metrics`` in a loop; the hammered median over the idle one is the
  figure (goal: at most 10 % more).
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from bench.b_detect import orch_detection
from bench.b_respawn import EventLog
from bench.common import Orchestrator, Procs, Row, Section, stat_row, wait_until
from ohm_tui.engine.monitor import OrchestratorHealthMonitor
from ohm_tui.web.access import parse_listen
from ohm_tui.web.server import WebServer

AGENTS = 1000
HAMMERS = 4
PATHS = ["/api/v1/status", "/api/v1/agents", "/api/v1/crashes?last=24h", "/metrics"]


def _get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            resp.read()
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def _config(data: Path) -> dict[str, object]:
    return {
        "data_dir": str(data),
        "auto_fix": False,
        "orchestrator_match": ["no-orchestrator-in-this-bench"],
    }


def scrape_times(work: Path, quick: bool) -> tuple[list[float], int]:
    procs = Procs()
    data = work / "web-scale"
    orch = Orchestrator(procs, data)
    mon = OrchestratorHealthMonitor(_config(data), name="bench")
    server = WebServer(mon, parse_listen("127.0.0.1:0"))
    try:
        orch.spawn_many(AGENTS, "worker", ["sleep", "infinity"])
        mon.start()
        server.start()

        def listed() -> bool:
            view = server.publisher.view
            return view is not None and len(view.agents) >= AGENTS

        wait_until(listed, 120, f"{AGENTS} agents published")
        out: list[float] = []
        for _ in range(10 if quick else 30):
            server.api._cache.clear()  # every scrape renders, as Prometheus's every 15 s would
            t0 = time.perf_counter()
            status = _get(server.url + "/metrics")
            out.append((time.perf_counter() - t0) * 1000)
            if status != 200:
                raise RuntimeError(f"/metrics answered {status}")
        return out, len(server.publisher.view.agents) if server.publisher.view else 0
    finally:
        server.stop()
        mon.close()
        orch.quit()
        procs.close()


HAMMER = """
import sys, threading, urllib.error, urllib.request
base, n, paths = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
done = [0] * n
busy = [0] * n
def loop(i):
    k = i
    while True:
        try:
            with urllib.request.urlopen(base + paths[k % len(paths)], timeout=10) as r:
                r.read()
        except urllib.error.HTTPError as exc:
            busy[i] += exc.code == 503
        except OSError:
            pass
        done[i] += 1
        k += 1
for i in range(n):
    threading.Thread(target=loop, args=(i,), daemon=True).start()
try:
    sys.stdin.read()  # until the bench closes our stdin
finally:
    print(sum(done), sum(busy), flush=True)
"""


class Hammer:
    """``n`` client threads in another process (as real clients are), GETting the API as
    fast as it answers; counts requests and busy answers."""

    def __init__(self, base: str, n: int) -> None:
        self.argv = [sys.executable, "-c", HAMMER, base, str(n), *PATHS]
        self.proc: subprocess.Popen[str] | None = None
        self.done = 0
        self.busy = 0

    def __enter__(self) -> Hammer:
        self.proc = subprocess.Popen(
            self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.proc is not None
        out, _ = self.proc.communicate("", timeout=30)
        done, busy = (int(x) for x in out.split())
        self.done, self.busy = done, busy


def detection_under_load(work: Path, quick: bool) -> tuple[list[float], list[float], Hammer]:
    procs = Procs()
    data = work / "web-load"
    orch = Orchestrator(procs, data)
    mon = OrchestratorHealthMonitor(_config(data), name="bench")
    log = EventLog()
    mon.add_listener(log)
    server = WebServer(mon, parse_listen("127.0.0.1:0"))
    n = 10 if quick else 25
    try:
        mon.start()
        server.start()
        idle = orch_detection(mon, log, orch, work, n, "web-idle")
        with Hammer(server.url, HAMMERS) as hammer:
            loaded = orch_detection(mon, log, orch, work, n, "web-load")
        return idle, loaded, hammer
    finally:
        server.stop()
        mon.close()
        orch.quit()
        procs.close()


def run(work: Path, quick: bool) -> Section:
    sec = Section("web")
    scrapes, listed = scrape_times(work, quick)
    sec.rows.append(
        stat_row(
            "10 /metrics",
            f"scrape of /metrics with {listed:,} live agents (fresh connection, uncached)",
            scrapes,
            "ms",
            50.0,
        )
    )
    idle, loaded, hammer = detection_under_load(work, quick)
    sec.rows.append(stat_row("10 API load", "crash -> recorded, idle endpoint", idle, "ms", None))
    sec.rows.append(
        stat_row(
            "10 API load",
            f"crash -> recorded while {HAMMERS} clients hammer the API",
            loaded,
            "ms",
            None,
            note=f"{hammer.done:,} requests served, {hammer.busy:,} answered busy (503)",
        )
    )
    if idle and loaded:
        ratio = statistics.median(loaded) / statistics.median(idle) * 100 - 100
        verdict = "met" if ratio <= 10.0 else "NOT met"
        sec.rows.append(
            Row(
                "10 API load",
                "hammered over idle (medians)",
                f"{ratio:+.1f} %",
                "-",
                str(len(loaded)),
                "≤ +10 %",
                verdict,
                "",
            )
        )
    return sec
