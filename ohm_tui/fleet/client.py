"""A tiny read-only client for one host's ``/api/v1``: stdlib ``urllib``, bearer token; timeouts."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from ohm_tui.fleet.hosts import Host

TIMEOUT = 5.0
MAX_BODY = 16 * 1024 * 1024  # a listing is capped by the server; this caps a rogue one


class RemoteError(Exception):
    """The host did not answer usefully (refused, timed out, not JSON, an error status)."""


def get_json(host: Host, path: str, *, timeout: float = TIMEOUT) -> Any:
    """``GET host.url + path`` as JSON; every failure is a ``RemoteError`` in words."""
    req = urllib.request.Request(host.url + path, headers={"Accept": "application/json"})
    if host.token:
        req.add_header("Authorization", f"Bearer {host.token}")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            body = resp.read(MAX_BODY + 1)
    except urllib.error.HTTPError as exc:
        raise RemoteError(_http_error(exc)) from None
    except urllib.error.URLError as exc:
        reason = exc.reason
        raise RemoteError(getattr(reason, "strerror", None) or str(reason)) from None
    except (OSError, ValueError) as exc:  # timeouts, resets, a bad URL
        raise RemoteError(str(exc) or type(exc).__name__) from None
    if len(body) > MAX_BODY:
        raise RemoteError(f"{path}: answer larger than {MAX_BODY} bytes")
    try:
        return json.loads(body)
    except ValueError:
        raise RemoteError(f"{path}: not JSON (is this an ohm endpoint?)") from None


def _http_error(exc: urllib.error.HTTPError) -> str:
    if exc.code == 401:
        return "401: a bearer token is required or wrong (token_file / --token-file)"
    try:
        detail = json.loads(exc.read(4096)).get("error")
    except (ValueError, AttributeError, OSError):
        detail = None
    return f"{exc.code}: {detail or exc.reason}"
