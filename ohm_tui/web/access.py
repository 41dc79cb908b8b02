"""Where the endpoint listens and who may read it.

Loopback by default. Any other address needs a bearer token read from a file
that only its owner can read or write, checked like the config file: a token
others can read is a token others have.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from ohm_tui.engine.config import PrivateFileError, read_private_file

MAX_TOKEN_BYTES = 4096


class AccessError(ValueError):
    """A listen address or token file ohm refuses, with what to do about it."""


@dataclass(frozen=True, slots=True)
class ListenAddress:
    host: str
    port: int

    @property
    def loopback(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    @property
    def ipv6(self) -> bool:
        return ":" in self.host

    def url(self, port: int | None = None) -> str:
        host = f"[{self.host}]" if self.ipv6 else self.host
        return f"http://{host}:{self.port if port is None else port}"


def parse_listen(text: str) -> ListenAddress:
    """``127.0.0.1:9464``, ``[::1]:9464``, ``0.0.0.0:9464``; port 0 picks a free one."""
    raw = text.strip()
    host, sep, port_text = raw.rpartition(":")
    if not sep or not host:
        raise AccessError(f"listen address {text!r}: expected HOST:PORT, e.g. 127.0.0.1:9464")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise AccessError(f"listen address {text!r}: write an IPv6 address in brackets, [::1]:9464")
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise AccessError(f"listen address {text!r}: port must be a number from 0 to 65535")
    if host != "localhost":
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise AccessError(
                f"listen address {text!r}: {host!r} is not an IP address (or localhost)"
            ) from None
    return ListenAddress(host, int(port_text))


def read_token_file(path: str | os.PathLike[str]) -> str:
    """The token in ``path``, refused when others could read or change the file."""
    try:
        token = read_private_file(path, "token file", MAX_TOKEN_BYTES)
    except PrivateFileError as exc:
        raise AccessError(str(exc)) from None
    p = Path(path).expanduser().absolute()
    if len(token) < 16 or any(c.isspace() for c in token):
        raise AccessError(
            f"token file {p}: the token must be one word of at least 16 characters "
            "(e.g. from: openssl rand -hex 32)"
        )
    return token


def check_access(address: ListenAddress, token: str | None) -> None:
    """Refuse a non-loopback address without a token."""
    if token is None and not address.loopback:
        raise AccessError(
            f"listening on {address.host} needs a bearer token: pass --token-file FILE "
            "(or token_file in the config), or listen on 127.0.0.1"
        )


def authorized(header: str | None, token: str | None) -> bool:
    """``Authorization: Bearer <token>`` in constant time; anything goes without a token."""
    if token is None:
        return True
    if not header:
        return False
    scheme, _, given = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode(), token.encode())
