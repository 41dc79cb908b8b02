"""Routes of the read-only API: what each path answers, as ``(status, type, body)``.

The JSON is the CLI's ``--json`` (``ohm check``, ``agents``, ``crashes``, ``bugs``,
``events``), so a script can move from ssh to HTTP unchanged. Listings come from
ohm's own read-only database connection, never through the engine's lock, and
answers are cached for ``CACHE_SECONDS`` so that a client hammering the API costs
one query a second.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

from ohm_tui.engine import timeutil
from ohm_tui.engine.store import BUG_STATUSES, StoreError
from ohm_tui.web.metrics import render
from ohm_tui.web.publisher import Publisher

JSON = "application/json"
METRICS = "text/plain; version=0.0.4; charset=utf-8"
CACHE_SECONDS = 1.0
DEFAULT_LIMIT = 1000
MAX_LIMIT = 10000
STALE_CHECKS = 3  # /healthz fails when the last check is older than this many intervals

Answer = tuple[int, str, bytes]


class BadRequest(ValueError):
    """A query parameter the API cannot use (answered with 400)."""


def _json(status: int, data: Any) -> Answer:
    return status, JSON, (json.dumps(data, indent=2, default=str) + "\n").encode()


def _one(query: dict[str, list[str]], name: str, default: str | None = None) -> str | None:
    values = query.get(name)
    return values[-1] if values else default


def _seconds(query: dict[str, list[str]], default: str) -> float:
    text = _one(query, "last", default) or default
    try:
        return timeutil.parse_duration(text)
    except ValueError as exc:
        raise BadRequest(f"last: {exc}") from None


def _limit(query: dict[str, list[str]], default: int) -> int:
    text = _one(query, "limit")
    if text is None:
        return default
    if not text.isdigit() or not 1 <= int(text) <= MAX_LIMIT:
        raise BadRequest(f"limit: expected a whole number from 1 to {MAX_LIMIT}, got {text!r}")
    return int(text)


class Api:
    """Answers one request from the publisher's last view or a cached listing."""

    def __init__(self, publisher: Publisher) -> None:
        self.publisher = publisher
        self.interval = publisher.monitor.config.health_check_interval
        self._cache: dict[str, tuple[float, Answer]] = {}
        self._cache_lock = threading.Lock()
        self.routes: dict[str, Callable[[dict[str, list[str]]], Answer]] = {
            "/metrics": self.metrics,
            "/healthz": self.healthz,
            "/api/v1/status": self.status,
            "/api/v1/agents": self.agents,
            "/api/v1/crashes": self.crashes,
            "/api/v1/bugs": self.bugs,
            "/api/v1/events": self.events,
        }

    def answer(self, target: str) -> Answer:
        parts = urlsplit(target)
        route = self.routes.get(parts.path.rstrip("/") or "/")
        if route is None:
            return _json(404, {"error": f"no such path; try one of {sorted(self.routes)}"})
        query = parse_qs(parts.query, keep_blank_values=True, max_num_fields=20)
        key = parts.path + "?" + "&".join(f"{k}={v}" for k, v in sorted(query.items()))
        at = time.monotonic()
        with self._cache_lock:
            hit = self._cache.get(key)
        if hit is not None and at - hit[0] < CACHE_SECONDS:
            return hit[1]
        try:
            result = route(query)
        except BadRequest as exc:
            return _json(400, {"error": str(exc)})
        except StoreError as exc:
            return _json(503, {"error": f"database unavailable: {exc}"})
        if result[0] == 200 and parts.path not in ("/healthz",):
            with self._cache_lock:
                if len(self._cache) > 256:  # bounded: queries are client-chosen
                    self._cache.clear()
                self._cache[key] = (at, result)
        return result

    # -- from the published view ---------------------------------------------
    def metrics(self, query: dict[str, list[str]]) -> Answer:
        view = self.publisher.view
        if view is None:
            return 503, METRICS, b"# ohm: no check yet\n"
        return 200, METRICS, render(view)

    def healthz(self, query: dict[str, list[str]]) -> Answer:
        """ohm's own liveness: its last check is at most three intervals old."""
        view = self.publisher.view
        limit = STALE_CHECKS * self.interval
        checked = view.report.checked_at if view and view.report else None
        age = None if checked is None else max(0.0, timeutil.now() - checked)
        ok = age is not None and age <= limit
        doc = {
            "ok": ok,
            "last_check_at": checked,
            "last_check_age_seconds": age,
            "max_age_seconds": limit,
        }
        return _json(200 if ok else 503, doc)

    def status(self, query: dict[str, list[str]]) -> Answer:
        view = self.publisher.view
        if view is None or view.report is None:
            return _json(503, {"error": "no check yet"})
        doc = view.report.to_dict()
        doc["checked_at"] = view.report.checked_at
        return _json(200, doc)

    def agents(self, query: dict[str, list[str]]) -> Answer:
        view = self.publisher.view
        if view is None:
            return _json(503, {"error": "no check yet"})
        return _json(200, [a.to_dict() for a in view.agents])

    # -- from ohm's read-only connection ---------------------------------------
    def _store_or_fail(self) -> Any:
        store = self.publisher.reader()
        if store is None:
            raise StoreError("the database does not exist yet", "cannot_open")
        return store

    def crashes(self, query: dict[str, list[str]]) -> Answer:
        since = timeutil.now() - _seconds(query, "24h")
        rows = self._store_or_fail().list_crashes(
            since=since,
            agent_type=_one(query, "agent") or None,
            task_id=_one(query, "task") or None,
            limit=_limit(query, DEFAULT_LIMIT),
        )
        return _json(200, [r.to_dict() for r in rows])

    def bugs(self, query: dict[str, list[str]]) -> Answer:
        status = _one(query, "status", "open") or "open"
        if status not in ("open", "all", *BUG_STATUSES):
            raise BadRequest(f"status: use open, all or one of {', '.join(BUG_STATUSES)}")
        rows = self._store_or_fail().list_bugs(status=status, limit=_limit(query, DEFAULT_LIMIT))
        return _json(200, [b.to_dict() for b in rows])

    def events(self, query: dict[str, list[str]]) -> Answer:
        since = timeutil.now() - _seconds(query, "1h")
        rows = self._store_or_fail().list_events(since=since, limit=_limit(query, 200))
        return _json(200, [e.to_dict() for e in rows])
