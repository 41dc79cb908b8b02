"""Hostile HTTP clients (a slowloris, a 1 GB header, 1,000 connections) do not
delay crash handling, and the endpoint recovers for honest clients."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import urllib.request

from ohm_tui.web.access import parse_listen
from ohm_tui.web.server import WebServer
from tests.faults.kit import MonitorFactory, Orchestrator, count, crash_argv
from tests.helpers import wait_until


def _slowloris(port: int, stop: threading.Event, socks: list[socket.socket]) -> None:
    for _ in range(20):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(b"GET /metrics HTTP/1.1\r\n")
        socks.append(s)
    while not stop.wait(0.2):
        for s in socks:
            with contextlib.suppress(OSError):
                s.sendall(b"X-a: b\r\n")


def _huge_header(port: int, sent: list[int]) -> None:
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    chunk = b"X-Big: " + b"a" * (1 << 20)
    try:
        s.sendall(b"GET /metrics HTTP/1.1\r\n")
        for _ in range(1024):  # up to 1 GB; the server stops reading after 32 KiB
            s.sendall(chunk)
            sent[0] += len(chunk)
    except OSError:
        pass
    finally:
        s.close()


def test_hostile_clients_do_not_delay_crash_handling(
    orch: Orchestrator, ohm: MonitorFactory
) -> None:
    agent = orch.start(argv=crash_argv())
    monitor = ohm()
    server = WebServer(monitor, parse_listen("127.0.0.1:0"), head_timeout=1.0)
    monitor.start()
    server.start()
    stop = threading.Event()
    slow: list[socket.socket] = []
    many: list[socket.socket] = []
    sent = [0]
    try:
        wait_until(lambda: agent.pid in monitor.watching(), timeout=10)
        threads = [
            threading.Thread(target=_slowloris, args=(server.port, stop, slow), daemon=True),
            threading.Thread(target=_huge_header, args=(server.port, sent), daemon=True),
        ]
        for t in threads:
            t.start()
        for _ in range(1000):
            with contextlib.suppress(OSError):
                many.append(socket.create_connection(("127.0.0.1", server.port), timeout=5))
        crashed_at = time.monotonic()
        agent.crash()
        wait_until(
            lambda: count(ohm.database, "SELECT COUNT(*) FROM agent_crashes") >= 1,
            timeout=2.0,
            message="the crash is recorded within 2 s under attack",
        )
        latency = time.monotonic() - crashed_at
        assert latency < 2.0
        threads[1].join(30)
        assert not threads[1].is_alive()
        assert sent[0] < 1 << 30, "the 1 GB header was cut off"
        # The slowloris connections are closed after the head timeout; honest clients get in.
        for s in many:
            s.close()

        def served() -> bool:
            try:
                with urllib.request.urlopen(server.url + "/healthz", timeout=2) as resp:
                    return bool(resp.status == 200)
            except OSError:
                return False

        wait_until(served, timeout=10, message="an honest client is served again")
    finally:
        stop.set()
        for s in slow + many:
            s.close()
        server.stop()
