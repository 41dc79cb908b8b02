"""One outbound POST with a timeout, and bounded retries with backoff.

Standard library only (``urllib``): a handful of small POSTs a minute needs no
HTTP client library. Nothing here retries forever or raises past its caller.
"""

from __future__ import annotations

import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass

TIMEOUT = 5.0  # seconds for connect + each read
ATTEMPTS = 3  # tries per message before it counts as failed
BACKOFF = 1.0  # seconds before the second try; doubles each time
MAX_RESPONSE = 64 * 1024  # bytes of an answer ever read


class DeliveryError(Exception):
    """A POST that did not get a 2xx answer (or any answer)."""


@dataclass(slots=True)
class Delivery:
    """How one message went: ``ok`` after ``attempts`` tries, or the last ``error``."""

    ok: bool
    attempts: int
    error: str | None = None


def redact(url: str) -> str:
    """``https://hooks.slack.com/…``: where a URL points, without its path, query or
    credentials (a webhook URL is often its own secret; logs and events must not hold it)."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or "?"
    if ":" in host:
        host = f"[{host}]"
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        port = ""
    rest = "/…" if parts.path not in ("", "/") or parts.query else ""
    return f"{parts.scheme}://{host}{port}{rest}"


def post(url: str, body: bytes, headers: Mapping[str, str], *, timeout: float = TIMEOUT) -> int:
    """POST ``body``; the status code of a 2xx answer, else ``DeliveryError``."""
    request = urllib.request.Request(url, data=body, method="POST", headers=dict(headers))
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            answer.read(MAX_RESPONSE)
            status = int(answer.status)
    except urllib.error.HTTPError as exc:
        raise DeliveryError(f"HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        raise DeliveryError(str(exc.reason)) from None
    except (OSError, ValueError) as exc:  # timeouts, resets, a malformed URL
        raise DeliveryError(str(exc) or type(exc).__name__) from None
    if not 200 <= status < 300:
        raise DeliveryError(f"HTTP {status}")
    return status


def deliver(
    send: Callable[[], object],
    *,
    attempts: int = ATTEMPTS,
    backoff: float = BACKOFF,
    stop: threading.Event | None = None,
) -> Delivery:
    """Call ``send`` until it does not raise ``DeliveryError``, at most ``attempts`` times,
    waiting ``backoff``, then twice that, between tries (cut short by ``stop``)."""
    error: str | None = None
    wait = backoff
    for n in range(1, attempts + 1):
        try:
            send()
            return Delivery(True, n)
        except DeliveryError as exc:
            error = str(exc)
        if n < attempts:
            if stop is not None and stop.wait(wait):
                return Delivery(False, n, error)
            if stop is None:
                threading.Event().wait(wait)
            wait *= 2
    return Delivery(False, attempts, error)
