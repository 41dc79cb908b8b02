"""Configuration: one frozen dataclass, validated before anything runs.

Sources, first found wins: a dict passed to the API, an explicit file
(``ohm.toml`` or a ``pyproject.toml`` with ``[tool.ohm]``), then ``./ohm.toml``,
then ``[tool.ohm]`` in ``./pyproject.toml``. An unknown key or a bad value raises
``ConfigError`` naming the key, because a typo that silently falls back to a
default is how monitors end up watching nothing.
"""

from __future__ import annotations

import dataclasses
import math
import os
import shlex
import stat
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from ohm_tui.engine.model import PRIORITIES as PRIORITIES  # defined once in model; re-exported

DEFAULT_PRIORITY_MAPPING: dict[str, str] = {
    "ImportError": "High",
    "ModuleNotFoundError": "High",
    "RuntimeError": "Medium",
    "TimeoutError": "Low",
}


class ConfigError(ValueError):
    """A configuration problem, always naming the offending key."""

    def __init__(self, key: str, message: str) -> None:
        self.key = key
        self.message = message
        super().__init__(f"config key {key!r}: {message}")


@dataclass(frozen=True, slots=True)
class Config:
    """Every knob ohm has. Paths that are relative are relative to ``data_dir``."""

    # -- the seed's keys, with the seed's defaults
    health_check_interval: float = 30.0
    max_respawn_attempts: int = 3
    orchestrator_freeze_threshold: float = 300.0
    crash_threshold_for_bug: int = 3
    bug_priority_mapping: dict[str, str] = field(
        default_factory=lambda: dict(DEFAULT_PRIORITY_MAPPING)
    )

    # -- where things are
    data_dir: str = "data"
    agent_state_file: str = "orchestrator/agent_state.json"
    work_loop_state_file: str = "orchestrator/work_loop_state.json"
    database: str = "orchestrator.db"
    log_dir: str = "ohm/logs"
    # Where to find the log of an agent whose state entry names none (the real
    # format has no log_file). Placeholders: {pid}, {agent_type}, {task_id}.
    agent_log_pattern: str | None = "logs/*-{pid}.log"
    heartbeat_log: str | None = None
    tickets_dir: str | None = "tickets"
    # Pin the orchestrator's state sources (agent_state, agent_lifecycle,
    # claude_invocations); none = detected from what is in data_dir.
    sources: list[str] | None = None
    claude_timeout: float = 600.0  # a session's claude call open 1.5x this long is stuck

    # -- liveness of the orchestrator
    heartbeat_interval: float = 30.0
    orchestrator_pid: int | None = None
    orchestrator_match: list[str] = field(default_factory=lambda: ["orchestrator", "start"])
    orchestrator_restart_command: list[str] | None = None
    orchestrator_restart_cwd: str | None = None
    restart_grace_period: float = 10.0
    restart_verify_timeout: float = 60.0

    # -- agents
    stop_grace_period: float = 5.0
    stalled_after: float = 600.0
    stalled_cpu_percent: float = 1.0
    flap_min_runtime: float = 30.0
    flap_threshold: int = 3
    flap_window: float = 900.0
    respawn_backoff_base: float = 5.0
    respawn_backoff_factor: float = 2.0
    respawn_stable_after: float = 300.0
    crash_recent_window: float = 600.0
    # An agent stays its orchestrator's zombie until the loop next spawns: normal for
    # a cycle or two. Only a lingering zombie is an issue, and a bug only later still.
    zombie_issue_after: float = 120.0
    zombie_bug_after: float = 1800.0
    pid_start_tolerance: float = 5.0
    log_tail_bytes: int = 65536
    event_detection: bool = True

    # -- bugs and alerts
    crash_storm_threshold: int = 10
    critical_crash_count: int = 10
    bug_rate_limit: float = 3600.0
    bug_command: list[str] | None = None
    bug_command_timeout: float = 10.0
    notify_command: list[str] | None = None
    sound: bool = False
    default_assignee: str = "code_developer"
    # Spend of session agents per rolling hour (claude_invocations.db) above which
    # status is degraded; twice it files a bug. None: no budget.
    cost_budget_per_hour: float | None = None

    # -- operation
    auto_fix: bool = True
    retention_days: float = 7.0
    lease_ttl: float = 90.0
    allow_insecure_files: bool = False

    # -- the HTTP endpoint (``ohm watch --listen``): /metrics and a read-only API
    listen: str | None = None  # "127.0.0.1:9464"; None: no endpoint
    token_file: str | None = None  # bearer token, required off loopback

    # -- alerts out: Alertmanager's API v2, and webhook destinations ([[notify]] tables)
    alertmanager_url: str | None = None  # "http://127.0.0.1:9093"; None: not sent
    notify: list[dict[str, Any]] = field(default_factory=list)

    # ---------------------------------------------------------------- paths
    def path(self, value: str) -> Path:
        """Resolve a configured path against ``data_dir``."""
        p = Path(value).expanduser()
        return p if p.is_absolute() else Path(self.data_dir).expanduser() / p

    @property
    def agent_state_path(self) -> Path:
        return self.path(self.agent_state_file)

    @property
    def work_loop_state_path(self) -> Path:
        return self.path(self.work_loop_state_file)

    @property
    def database_path(self) -> Path:
        return self.path(self.database)

    @property
    def log_dir_path(self) -> Path:
        return self.path(self.log_dir)

    @property
    def exits_dir_path(self) -> Path:
        """Where the runner wrapper drops exit records of agents ohm spawned."""
        return self.path("ohm/exits")

    @property
    def heartbeat_log_path(self) -> Path | None:
        return self.path(self.heartbeat_log) if self.heartbeat_log else None

    @property
    def tickets_path(self) -> Path | None:
        """Relative to the orchestrator's root (the data dir's parent): ``tickets/``
        beside ``data/`` is where its tracker writes and its bug pickup reads."""
        if not self.tickets_dir:
            return None
        p = Path(self.tickets_dir).expanduser()
        return p if p.is_absolute() else self.root_path / p

    @property
    def root_path(self) -> Path:
        """The orchestrator's root: the directory that holds ``data/``."""
        return Path(self.data_dir).expanduser().absolute().parent

    def replace(self, **changes: Any) -> Config:
        """A validated copy with some keys changed."""
        merged = {f.name: getattr(self, f.name) for f in fields(self)}
        merged.update(changes)
        return config_from_mapping(merged, origin="override")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_FIELDS = {f.name: f for f in fields(Config)}

# Keys that must be > 0 / >= 0.
_POSITIVE = {
    "health_check_interval",
    "orchestrator_freeze_threshold",
    "heartbeat_interval",
    "retention_days",
    "lease_ttl",
    "log_tail_bytes",
    "flap_threshold",
    "crash_storm_threshold",
    "critical_crash_count",
    "crash_threshold_for_bug",
    "bug_command_timeout",
    "restart_verify_timeout",
    "stalled_after",
    "flap_window",
    "cost_budget_per_hour",
    "claude_timeout",
}
_NON_NEGATIVE = {
    "max_respawn_attempts",
    "restart_grace_period",
    "stop_grace_period",
    "stalled_cpu_percent",
    "flap_min_runtime",
    "respawn_backoff_base",
    "respawn_stable_after",
    "crash_recent_window",
    "zombie_issue_after",
    "zombie_bug_after",
    "pid_start_tolerance",
    "bug_rate_limit",
}


def _check_number(key: str, value: Any, kind: type) -> Any:
    # bool is an int in Python; "three" is not a number anywhere.
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(key, f"expected a number, got {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(key, f"expected a finite number, got {value!r}")
    if kind is int:
        if isinstance(value, float) and not value.is_integer():
            raise ConfigError(key, f"expected a whole number, got {value!r}")
        value = int(value)
    else:
        value = float(value)
    if key in _POSITIVE and value <= 0:
        raise ConfigError(key, f"must be greater than 0, got {value!r}")
    if key in _NON_NEGATIVE and value < 0:
        raise ConfigError(key, f"must not be negative, got {value!r}")
    if key == "respawn_backoff_factor" and value < 1:
        raise ConfigError(key, f"must be at least 1 (backoff grows), got {value!r}")
    return value


def _check_argv(key: str, value: Any) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            argv = shlex.split(value)
        except ValueError as exc:
            raise ConfigError(key, f"cannot split command: {exc}") from None
    elif isinstance(value, list) and all(isinstance(v, str) for v in value):
        argv = list(value)
    else:
        raise ConfigError(key, f"expected a command (list of strings or a string), got {value!r}")
    if not argv:
        raise ConfigError(key, "command is empty")
    return argv


SOURCE_NAMES = ("agent_state", "agent_lifecycle", "claude_invocations")


def _check_sources(value: Any) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value:
        raise ConfigError("sources", f"expected a non-empty list of source names, got {value!r}")
    for name in value:
        if name not in SOURCE_NAMES:
            raise ConfigError(
                "sources", f"unknown source {name!r} (known: {', '.join(SOURCE_NAMES)})"
            )
    return list(dict.fromkeys(value))


NOTIFY_FORMATS = ("slack", "ntfy", "json")
NOTIFY_SEVERITIES = ("warning", "critical")
_NOTIFY_KEYS = ("url", "format", "secret_file", "min_severity")


def _check_url(key: str, value: Any) -> str:
    if not isinstance(value, str) or not value.startswith(("http://", "https://")):
        raise ConfigError(key, f"expected an http:// or https:// URL, got {value!r}")
    if any(c.isspace() for c in value) or len(value) <= len("https://"):
        raise ConfigError(key, f"not a usable URL: {value!r}")
    return value


def _check_notify(value: Any) -> list[dict[str, Any]]:
    """``[[notify]]`` tables: each a destination with ``url`` and ``format``; a ``json``
    destination signs with the secret in ``secret_file`` (read when sending starts)."""
    if isinstance(value, Mapping):
        value = [value]
    if not isinstance(value, list):
        raise ConfigError("notify", f"expected [[notify]] tables, got {value!r}")
    out: list[dict[str, Any]] = []
    for n, table in enumerate(value):
        where = f"notify[{n}]"
        if not isinstance(table, Mapping):
            raise ConfigError(where, f"expected a table with url and format, got {table!r}")
        for k in table:
            if k not in _NOTIFY_KEYS:
                raise ConfigError(f"{where}.{k}", f"unknown key (known: {', '.join(_NOTIFY_KEYS)})")
        if "url" not in table:
            raise ConfigError(f"{where}.url", "missing: where to send")
        url = _check_url(f"{where}.url", table["url"])
        fmt = table.get("format")
        if fmt not in NOTIFY_FORMATS:
            raise ConfigError(
                f"{where}.format", f"expected one of {', '.join(NOTIFY_FORMATS)}, got {fmt!r}"
            )
        secret = table.get("secret_file")
        if secret is not None and (not isinstance(secret, str) or not secret):
            raise ConfigError(f"{where}.secret_file", f"expected a file path, got {secret!r}")
        if fmt == "json" and secret is None:
            raise ConfigError(
                f"{where}.secret_file", "a json destination needs a secret file to sign with"
            )
        severity = table.get("min_severity", "warning")
        if severity not in NOTIFY_SEVERITIES:
            raise ConfigError(
                f"{where}.min_severity",
                f"expected one of {', '.join(NOTIFY_SEVERITIES)}, got {severity!r}",
            )
        out.append({"url": url, "format": fmt, "secret_file": secret, "min_severity": severity})
    return out


def _validate(key: str, value: Any) -> Any:
    f = _FIELDS[key]
    ftype = str(f.type)
    if key == "bug_priority_mapping":
        if not isinstance(value, Mapping):
            raise ConfigError(key, f"expected a table of error type -> priority, got {value!r}")
        out: dict[str, str] = {}
        for k, v in value.items():
            if not isinstance(k, str) or v not in PRIORITIES:
                raise ConfigError(
                    key, f"{k!r} = {v!r}: priority must be one of {', '.join(PRIORITIES)}"
                )
            out[k] = v
        return out
    if key in ("orchestrator_restart_command", "bug_command", "notify_command"):
        return _check_argv(key, value)
    if key == "listen" and value not in (None, ""):
        host, sep, port = str(value).rpartition(":") if isinstance(value, str) else ("", "", "")
        if not sep or not host or not port.isdigit() or int(port) > 65535:
            raise ConfigError(key, f"expected HOST:PORT such as 127.0.0.1:9464, got {value!r}")
    if key == "sources":
        return _check_sources(value)
    if key == "alertmanager_url":
        return None if value in (None, "") else _check_url(key, value)
    if key == "notify":
        return _check_notify(value)
    if key == "orchestrator_match":
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise ConfigError(key, f"expected a list of non-empty strings, got {value!r}")
        return list(value)
    if ftype in ("float",):
        return _check_number(key, value, float)
    if ftype in ("int",):
        return _check_number(key, value, int)
    if ftype == "float | None":
        return None if value is None else _check_number(key, value, float)
    if ftype == "int | None":
        return None if value is None else _check_number(key, value, int)
    if ftype == "bool":
        if not isinstance(value, bool):
            raise ConfigError(key, f"expected true or false, got {value!r}")
        return value
    if ftype == "str":
        if not isinstance(value, str) or not value:
            raise ConfigError(key, f"expected a non-empty string, got {value!r}")
        return value
    if ftype == "str | None":
        if value is None or value == "":
            return None
        if not isinstance(value, str):
            raise ConfigError(key, f"expected a string, got {value!r}")
        return value
    raise ConfigError(key, f"no validator for type {ftype}")  # pragma: no cover


def config_from_mapping(data: Mapping[str, Any], origin: str = "config") -> Config:
    """Build a ``Config`` from a mapping, rejecting unknown keys and bad values."""
    if not isinstance(data, Mapping):
        raise ConfigError(
            "<root>", f"{origin}: expected a table of keys, got {type(data).__name__}"
        )
    values: dict[str, Any] = {}
    for key, value in data.items():
        if key not in _FIELDS:
            close = _closest(key)
            hint = f" (did you mean {close!r}?)" if close else ""
            raise ConfigError(key, f"unknown key in {origin}{hint}")
        try:
            values[key] = _validate(key, value)
        except ConfigError as exc:
            if origin in ("config", "override"):
                raise
            raise ConfigError(key, f"{exc.message} (in {origin})") from None
    return Config(**values)


def _closest(key: str) -> str | None:
    import difflib

    found = difflib.get_close_matches(key, list(_FIELDS), n=1, cutoff=0.6)
    return found[0] if found else None


ALLOW_INSECURE_CONFIG_ENV = "OHM_ALLOW_INSECURE_CONFIG"


def check_file_trust(
    path: Path, what: str, *, override: str = "set allow_insecure_files = true"
) -> None:
    """Refuse files others can write, as ssh refuses a loose key file.

    ohm runs commands named in its config and state files; a file that another
    user can change is a way to make ohm run their command.
    """
    try:
        st = path.stat()
    except OSError:
        return
    problems = []
    fixes = []
    quoted = shlex.quote(str(path))
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        problems.append(f"is writable by {'group' if st.st_mode & stat.S_IWGRP else 'others'}")
        fixes.append(f"chmod go-w {quoted}")
    if hasattr(os, "getuid") and st.st_uid not in (os.getuid(), 0):
        problems.append(f"is owned by uid {st.st_uid}, not you")
        fixes.append(f"chown {os.getuid()} {quoted}")
    if problems:
        raise PermissionError(
            f"{what} {path} {' and '.join(problems)}; refusing to trust it "
            f"(fix with: {' and '.join(fixes)}, or {override})"
        )


def _insecure_config_allowed(allow_insecure: bool | None) -> bool:
    if allow_insecure is not None:
        return allow_insecure
    return os.environ.get(ALLOW_INSECURE_CONFIG_ENV, "").strip().lower() in ("1", "true", "yes")


def _trusted_table(path: Path, allow_insecure: bool | None) -> dict[str, Any]:
    """The ohm table of a config file, refused when another user could have written it.

    Only a file that sets something is checked: a loose ``pyproject.toml`` without
    ``[tool.ohm]`` cannot change what ohm does. A key inside the file cannot waive
    the check (a loose file could set it itself): only the caller or the
    environment can.
    """
    table = _table_from_file(path)
    if table and not _insecure_config_allowed(allow_insecure):
        try:
            check_file_trust(
                path.absolute(),
                "config file",
                override=f"set {ALLOW_INSECURE_CONFIG_ENV}=1 to allow it",
            )
        except PermissionError as exc:
            raise ConfigError("<file>", str(exc)) from None
    return table


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("<file>", f"{path} is not valid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError("<file>", f"cannot read {path}: {exc.strerror or exc}") from None


def _table_from_file(path: Path) -> dict[str, Any]:
    data = _read_toml(path)
    if path.name == "pyproject.toml":
        table = data.get("tool", {}).get("ohm", {})
        if not isinstance(table, dict):
            raise ConfigError("tool.ohm", f"{path}: [tool.ohm] must be a table")
        return table
    # ohm.toml: keys at top level, or under [ohm].
    if set(data) == {"ohm"} and isinstance(data["ohm"], dict):
        return dict(data["ohm"])
    return data


def load_config(
    source: Mapping[str, Any] | str | os.PathLike[str] | Config | None = None,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    search_cwd: bool = True,
    allow_insecure: bool | None = None,
) -> Config:
    """Load and validate a configuration.

    ``source`` may be a ``Config``, a dict, or a path to ``ohm.toml`` /
    ``pyproject.toml``. With no source, ``./ohm.toml`` then ``[tool.ohm]`` in
    ``./pyproject.toml`` are used when present. ``data_dir`` and ``overrides``
    win over the file (they come from the command line). A config file that
    group or others can write, or that another user owns, is refused unless
    ``allow_insecure`` is True (default: the ``OHM_ALLOW_INSECURE_CONFIG=1``
    environment variable).
    """
    table: dict[str, Any] = {}
    origin = "config"
    if isinstance(source, Config):
        table = source.to_dict()
    elif isinstance(source, Mapping):
        table = dict(source)
    elif source is not None:
        path = Path(source)
        if not path.is_file():
            raise ConfigError("<file>", f"config file {path} does not exist")
        table = _trusted_table(path, allow_insecure)
        origin = str(path)
    elif search_cwd:
        candidates = [Path("ohm.toml"), Path("pyproject.toml")]
        if data_dir is not None:  # a config kept next to the state it describes
            candidates.insert(0, Path(data_dir) / "ohm.toml")
        for candidate in candidates:
            if candidate.is_file():
                table = _trusted_table(candidate, allow_insecure)
                origin = str(candidate)
                break
    cfg = config_from_mapping(table, origin=origin)
    extra: dict[str, Any] = dict(overrides or {})
    if data_dir is not None:
        extra["data_dir"] = os.fspath(data_dir)
    if extra:
        cfg = cfg.replace(**extra)
    return cfg


class PrivateFileError(ValueError):
    """A file of secrets (a token, a signing key) that cannot be used."""


def read_private_file(path: str | os.PathLike[str], what: str, max_bytes: int) -> str:
    """The stripped text of a file only its owner may read or write (a bearer token, a
    webhook secret): refused when missing, not a regular file, loose, or too large.
    Raises ``PrivateFileError`` naming the file and the fix."""
    p = Path(path).expanduser().absolute()
    try:
        st = p.stat()
    except OSError as exc:
        raise PrivateFileError(f"{what} {p}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(st.st_mode):
        raise PrivateFileError(f"{what} {p} is not a regular file")
    try:
        check_file_trust(p, what, override="use a file only you can write")
    except PermissionError as exc:
        raise PrivateFileError(str(exc)) from None
    if st.st_mode & (stat.S_IRGRP | stat.S_IROTH):
        who = "others" if st.st_mode & stat.S_IROTH else "group"
        raise PrivateFileError(
            f"{what} {p} is readable by {who}; refusing to use it (fix with: chmod 600 {p})"
        )
    with p.open("rb") as fh:
        data = fh.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise PrivateFileError(f"{what} {p} is larger than {max_bytes} bytes")
    return data.decode("utf-8", "replace").strip()
