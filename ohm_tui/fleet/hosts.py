"""Which hosts make the fleet: ``--remote URL`` flags or a ``fleet.toml``.

``fleet.toml``::

    [[host]]
    name = "orch-1"                  # optional; default: the URL's host:port
    url = "http://orch-1:9464"
    token_file = "/etc/ohm/orch-1.token"   # optional; mode 600, like --token-file
    ssh = "ops@orch-1"               # optional; what the fleet view puts after ``ssh``
    data_dir = "/srv/orch/data"      # optional; ohm's --data-dir on that host, for those commands

The file and each token file are checked like the config file: a file others can
write (or, for a token, read) is refused.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ohm_tui.engine.config import check_file_trust
from ohm_tui.web.access import AccessError, read_token_file

KEYS = {"name", "url", "token_file", "ssh", "data_dir"}


class FleetError(ValueError):
    """A fleet file or remote URL ohm cannot use, with what to do about it."""


@dataclass(frozen=True, slots=True)
class Host:
    name: str
    url: str  # base URL, no trailing slash: http://orch-1:9464
    token: str | None = None
    ssh: str | None = None  # ssh destination; default: the URL's host name
    data_dir: str | None = None  # ``--data-dir`` for commands run there

    @property
    def ssh_target(self) -> str:
        return self.ssh or (urlsplit(self.url).hostname or self.name)


def check_url(url: str) -> str:
    """``http(s)://host:port`` with no path, or a ``FleetError``."""
    text = url.strip().rstrip("/")
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise FleetError(f"remote {url!r}: expected http://HOST:PORT, as ohm watch prints")
    if parts.path or parts.query or parts.fragment or parts.username:
        raise FleetError(f"remote {url!r}: give the endpoint's base URL only, http://HOST:PORT")
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise FleetError(f"remote {url!r}: bad port") from None
    return text


def default_name(url: str) -> str:
    return urlsplit(url).netloc


def _token(path: str | None, base: Path) -> str | None:
    if not path:
        return None
    p = Path(path).expanduser()
    try:
        return read_token_file(p if p.is_absolute() else base / p)
    except AccessError as exc:
        raise FleetError(str(exc)) from None


def hosts_from_urls(urls: list[str], token_file: str | None = None) -> list[Host]:
    """``--remote URL`` flags; one ``--token-file`` for all of them."""
    token = _token(token_file, Path.cwd())
    hosts = [Host(default_name(u), u, token) for u in (check_url(x) for x in urls)]
    return _unique(hosts)


def load_fleet(path: str | Path) -> list[Host]:
    """The hosts of a ``fleet.toml`` (relative token files: relative to it)."""
    p = Path(path).expanduser().absolute()
    try:
        check_file_trust(p, "fleet file", override="use a file only you can write")
    except PermissionError as exc:
        raise FleetError(str(exc)) from None
    try:
        with p.open("rb") as fh:
            doc = tomllib.load(fh)
    except OSError as exc:
        raise FleetError(f"fleet file {p}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise FleetError(f"fleet file {p}: {exc}") from None
    entries = doc.get("host")
    if not isinstance(entries, list) or not entries:
        raise FleetError(f"fleet file {p}: expected [[host]] tables with url = ...")
    return _unique([_host(entry, i, p) for i, entry in enumerate(entries, 1)])


def _host(entry: Any, index: int, path: Path) -> Host:
    where = f"fleet file {path}, host {index}"
    if not isinstance(entry, dict):
        raise FleetError(f"{where}: expected a [[host]] table")
    unknown = set(entry) - KEYS
    if unknown:
        raise FleetError(f"{where}: unknown key {sorted(unknown)[0]!r} (use {sorted(KEYS)})")
    for key in KEYS & set(entry):
        if not isinstance(entry[key], str) or not entry[key].strip():
            raise FleetError(f"{where}: {key} must be a non-empty string")
    if "url" not in entry:
        raise FleetError(f"{where}: url is required")
    url = check_url(entry["url"])
    return Host(
        name=entry.get("name") or default_name(url),
        url=url,
        token=_token(entry.get("token_file"), path.parent),
        ssh=entry.get("ssh"),
        data_dir=entry.get("data_dir"),
    )


def _unique(hosts: list[Host]) -> list[Host]:
    seen: set[str] = set()
    for h in hosts:
        if h.name in seen:
            raise FleetError(f"host {h.name!r} is listed twice; give each a distinct name")
        seen.add(h.name)
    return hosts
