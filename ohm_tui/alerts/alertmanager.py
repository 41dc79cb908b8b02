"""Alertmanager's API v2: ``POST /api/v2/alerts`` with every open alert, and the
recently ended ones with their ``endsAt``.

Alertmanager resolves an alert nobody re-sends once its ``endsAt`` passes, so
firing alerts carry ``endsAt`` a few re-send periods ahead (as Prometheus does)
and are re-sent while open: if ohm dies, they end on their own, and the
shipped ``OhmDown`` rule says why.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from ohm_tui.alerts import http
from ohm_tui.alerts.model import Alert
from ohm_tui.alerts.sender import Sender

RESEND_EVERY = 60.0  # seconds between re-sends of open alerts
ENDS_AFTER = 4  # re-send periods after which Alertmanager ends an alert not re-sent


def rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def payload(
    alerts: Sequence[Alert], now: float, *, resend_every: float = RESEND_EVERY
) -> list[dict[str, Any]]:
    """The API's body: a list of ``{labels, annotations, startsAt, endsAt}``."""
    out: list[dict[str, Any]] = []
    for a in alerts:
        ends = a.ends_at if a.ends_at is not None else now + ENDS_AFTER * resend_every
        out.append(
            {
                "labels": dict(a.labels),
                "annotations": dict(a.annotations),
                "startsAt": rfc3339(a.starts_at),
                "endsAt": rfc3339(ends),
            }
        )
    return out


class AlertmanagerSender(Sender[bytes]):
    """Posts batches of alerts (already JSON) to one Alertmanager."""

    def __init__(
        self,
        url: str,
        on_error: Callable[[str], None],
        *,
        timeout: float = http.TIMEOUT,
        resend_every: float = RESEND_EVERY,
        **kw: Any,
    ) -> None:
        self.url = url.rstrip("/") + "/api/v2/alerts"
        self.timeout = timeout
        self.resend_every = resend_every
        super().__init__("alertmanager", self._post, on_error, **kw)

    def submit(self, alerts: Sequence[Alert], now: float) -> None:
        body = json.dumps(payload(alerts, now, resend_every=self.resend_every)).encode()
        self.put(body)

    def _post(self, body: bytes) -> None:
        http.post(self.url, body, {"Content-Type": "application/json"}, timeout=self.timeout)
