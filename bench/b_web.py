"""Figure 10: the HTTP endpoint (``ohm watch --listen``) at scale and under load.

- ``/metrics`` scrape time with 1,000 live agents (the ``scale`` set-up: ``sleep
  infinity`` agents listed by the stand-in orchestrator): wall time of one GET on a
  fresh connection, as Prometheus scrapes. The API's one-second answer cache is
  emptied before each scrape (the bench peeks), so every figure includes rendering.
- Crash detection (figure 1's method) idle, then while ``HAMMERS`` client threads
  GET ``/api/v1/status``, ``agents``, ``crashes`` and ``/metrics`` in a loop; the
  hammered median over the idle one is the figure (goal: at most 10 % more).
"""

from __future__ import annotations

import statistics
import threading
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


class Hammer:
    """``n`` threads GETting the API as fast as it answers; counts requests and answers."""

    def __init__(self, base: str, n: int) -> None:
        self.base = base
        self.stop = threading.Event()
        self.done = 0
        self.busy = 0
        self.threads = [
            threading.Thread(target=self._loop, args=(i,), daemon=True) for i in range(n)
        ]

    def _loop(self, i: int) -> None:
        k = i
        while not self.stop.is_set():
            status = _get(self.base + PATHS[k % len(PATHS)])
            self.done += 1
            self.busy += status == 503
            k += 1

    def __enter__(self) -> Hammer:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(15)


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
