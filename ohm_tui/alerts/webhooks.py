"""Webhook destinations (``[[notify]]``): Slack, ntfy, or JSON signed as Standard
Webhooks sign it.

Started and ended alerts are grouped over a short window, and a destination gets
at most one message per ``min_interval``: a storm of 200 crashes is a few
messages, each saying how many alerts it covers.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ohm_tui.alerts import http
from ohm_tui.alerts.model import SEVERITY_RANK, Alert
from ohm_tui.alerts.sender import Sender
from ohm_tui.engine.config import PrivateFileError, read_private_file

GROUP_WINDOW = 2.0  # seconds from the first change to the message that carries it
MIN_INTERVAL = 10.0  # seconds between two messages to one destination
MAX_PENDING = 1000  # alerts held for the next message; more are only counted
MAX_LISTED = 20  # alerts named in a text message (json: MAX_LISTED * 5)
MAX_SECRET_BYTES = 4096


class SecretError(ValueError):
    """A secret file that cannot be used (missing, loose, empty)."""


def read_secret(path: str | os.PathLike[str]) -> bytes:
    """The signing key in ``path``: refused when others could read or change the file.
    A ``whsec_`` secret (Standard Webhooks) is base64 after its prefix."""
    try:
        text = read_private_file(path, "secret file", MAX_SECRET_BYTES)
    except PrivateFileError as exc:
        raise SecretError(str(exc)) from None
    p = Path(path).expanduser().absolute()
    if not text:
        raise SecretError(f"secret file {p} is empty")
    return secret_key(text)


def secret_key(text: str) -> bytes:
    if text.startswith("whsec_"):
        try:
            return base64.b64decode(text[len("whsec_") :], validate=True)
        except ValueError:
            raise SecretError("a whsec_ secret must be base64 after its prefix") from None
    return text.encode()


def sign(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """``webhook-signature``: ``v1,`` + base64 HMAC-SHA256 of ``id.timestamp.body``."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


@dataclass(slots=True)
class Message:
    """One grouped message, ready to post (json ones are signed at each try)."""

    body: bytes
    headers: dict[str, str]
    msg_id: str = field(default_factory=lambda: f"msg_{uuid.uuid4().hex}")


@dataclass(slots=True)
class Batch:
    """What one message covers."""

    instance: str
    firing: list[Alert]
    resolved: list[Alert]
    more: int = 0  # alerts beyond MAX_PENDING, counted only

    @property
    def title(self) -> str:
        parts = []
        if self.firing:
            parts.append(f"{len(self.firing)} firing")
        if self.resolved:
            parts.append(f"{len(self.resolved)} resolved")
        if self.more:
            parts.append(f"{self.more} more not listed")
        return f"ohm on {self.instance}: " + ", ".join(parts)

    def lines(self, limit: int = MAX_LISTED) -> list[str]:
        rows = [("FIRING", a) for a in self.firing] + [("RESOLVED", a) for a in self.resolved]
        out = [
            f"{state} [{a.severity}] {a.labels.get('alertname', '?')}: "
            f"{a.annotations.get('summary', '')}"
            + (f" ({a.annotations['bug_number']})" if "bug_number" in a.annotations else "")
            for state, a in rows[:limit]
        ]
        if len(rows) > limit:
            out.append(f"… and {len(rows) - limit} more")
        return out


def _header_text(text: str) -> str:
    # HTTP header values are latin-1; ntfy shows them as they are.
    return text.encode("latin-1", "replace").decode("latin-1").replace("\n", " ")[:200]


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def render(fmt: str, batch: Batch, now: float) -> Message:
    """The message in a destination's format."""
    if fmt == "slack":
        text = "\n".join([f"*{_slack_escape(batch.title)}*", *map(_slack_escape, batch.lines())])
        return Message(json.dumps({"text": text}).encode(), {"Content-Type": "application/json"})
    if fmt == "ntfy":
        critical = any(a.severity == "critical" for a in batch.firing)
        priority = "urgent" if critical else "high" if batch.firing else "default"
        tags = "rotating_light" if batch.firing else "white_check_mark"
        headers = {
            "Title": _header_text(batch.title),
            "Priority": priority,
            "Tags": tags,
            "Content-Type": "text/plain; charset=utf-8",
        }
        return Message("\n".join(batch.lines()).encode(), headers)
    listed = MAX_LISTED * 5
    document: dict[str, Any] = {
        "type": "ohm.alerts",
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
        "data": {
            "instance": batch.instance,
            "title": batch.title,
            "firing_count": len(batch.firing),
            "resolved_count": len(batch.resolved),
            "not_listed": batch.more
            + max(0, len(batch.firing) - listed)
            + max(0, len(batch.resolved) - listed),
            "firing": [a.to_dict() for a in batch.firing[:listed]],
            "resolved": [a.to_dict() for a in batch.resolved[:listed]],
        },
    }
    return Message(json.dumps(document).encode(), {"Content-Type": "application/json"})


class WebhookDestination:
    """One ``[[notify]]`` table: groups changes, rate-limits, and posts from its own thread."""

    def __init__(
        self,
        url: str,
        fmt: str,
        instance: str,
        on_error: Callable[[str], None],
        *,
        secret: bytes | None = None,
        min_severity: str = "warning",
        window: float = GROUP_WINDOW,
        min_interval: float = MIN_INTERVAL,
        timeout: float = http.TIMEOUT,
        **kw: Any,
    ) -> None:
        self.url = url
        self.fmt = fmt
        self.instance = instance
        self.secret = secret
        self.min_rank = SEVERITY_RANK.get(min_severity, 1)
        self.window = window
        self.min_interval = min_interval
        self.timeout = timeout
        self._firing: list[Alert] = []
        self._resolved: list[Alert] = []
        self._more = 0
        self._first_at: float | None = None
        self._last_put = float("-inf")
        self.messages = 0  # messages queued for sending
        self.sender: Sender[Message] = Sender(
            f"webhook {fmt} {http.redact(url)}", self._post, on_error, **kw
        )

    def add(self, started: Sequence[Alert], ended: Sequence[Alert], now: float) -> None:
        """Hold changes for the next message (at or above ``min_severity`` only)."""
        for alerts, into in ((started, self._firing), (ended, self._resolved)):
            for a in alerts:
                if SEVERITY_RANK.get(a.severity, 1) < self.min_rank:
                    continue
                if len(self._firing) + len(self._resolved) >= MAX_PENDING:
                    self._more += 1
                    continue
                into.append(a)
                if self._first_at is None:
                    self._first_at = now

    @property
    def held(self) -> int:
        """Changes waiting for the next message (its window, or the rate limit)."""
        return len(self._firing) + len(self._resolved) + self._more

    def tick(self, now: float, *, force: bool = False) -> bool:
        """Queue the grouped message once its window has passed and the rate limit allows
        (``force``: now, at shutdown)."""
        if self._first_at is None:
            return False
        early = now - self._first_at < self.window or now - self._last_put < self.min_interval
        if early and not force:
            return False
        batch = Batch(self.instance, self._firing, self._resolved, self._more)
        self._firing, self._resolved, self._more = [], [], 0
        self._first_at = None
        self._last_put = now
        self.messages += 1
        self.sender.put(render(self.fmt, batch, now))
        return True

    def _post(self, message: Message) -> None:
        headers = dict(message.headers)
        if self.secret is not None:
            ts = int(time.time())
            headers["webhook-id"] = message.msg_id
            headers["webhook-timestamp"] = str(ts)
            headers["webhook-signature"] = sign(self.secret, message.msg_id, ts, message.body)
        http.post(self.url, message.body, headers, timeout=self.timeout)

    def start(self) -> None:
        self.sender.start()

    def stop(self, timeout: float = 5.0) -> None:
        self.sender.stop(timeout)
