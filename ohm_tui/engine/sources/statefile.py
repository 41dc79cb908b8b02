"""The orchestrator's JSON state files: read them as they are, write them safely.

Two shapes of ``agent_state.json`` exist: the real orchestrator's (PID-string
keys, one shell-like command string, naive local ``started_at``) and ohm's own
documented one (same shape, ``"format": "ohm"``, argv lists, offset-aware or
epoch times). The format is detected, never asked for.

Reading never raises anything but ``StateFileError``, whose ``problem`` says in
words what is wrong, and one malformed entry is skipped with a warning instead
of hiding every other agent.

Writing (``statewrite``) goes through ``update_agent_state`` only: a sidecar ``flock`` (the
orchestrator may take the same lock), a fresh re-read, the caller's change, a
temp file, fsync and ``os.replace``, with an optimistic re-check against
writers that do not lock.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shlex
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ohm_tui.engine import timeutil
from ohm_tui.engine.fmt import article, size
from ohm_tui.engine.model import AgentRecord
from ohm_tui.engine.model.naming import agent_key, split_command

__all__ = [
    "MAX_STATE_BYTES",
    "AgentStateView",
    "LoopState",
    "StateFileError",
    "agent_key",
    "detect_format",
    "read_agent_state",
    "read_agent_state_settled",
    "read_work_loop_state",
    "record_from_entry",
]

Format = Literal["real", "ohm"]

MAX_STATE_BYTES = 16 * 1024 * 1024
FUTURE_TOLERANCE = 60.0


class StateFileError(Exception):
    """A state file that cannot be used, with the problem in words."""

    def __init__(self, path: Path | str, problem: str) -> None:
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")

    def __str__(self) -> str:
        return f"{self.path}: {self.problem}"


@dataclass
class AgentStateView:
    """``agent_state.json`` as read once: records, the detected format, and what was skipped."""

    path: Path
    format: Format
    agents: list[AgentRecord]
    completed: list[AgentRecord]
    orchestrator_pid: int | None
    mtime: float
    warnings: list[str] = field(default_factory=list)


@dataclass
class LoopState:
    """When the orchestrator's loop last finished a cycle: ``work_loop_state.json``
    (era 1) or, with the same shape, ``orchestrator_state`` (era 2+)."""

    path: Path
    last_update: float | None
    last_roadmap_update: float | None
    active_tasks: dict[str, Any]
    pid: int | None
    mtime: float | None
    problem: str | None
    # What the heartbeat is, in words: a bug about a frozen loop names what to watch.
    heartbeat: str = ""

    def __post_init__(self) -> None:
        if not self.heartbeat:
            self.heartbeat = f"last_update in {self.path.name}"


# --------------------------------------------------------------------------- reading


_JSON_TYPE = {
    dict: "object",
    list: "list",
    str: "string",
    int: "number",
    float: "number",
    bool: "boolean",
    type(None): "null",
}


def _json_type(value: object) -> str:
    return _JSON_TYPE.get(type(value), type(value).__name__)


def _os_problem(exc: OSError) -> str:
    if isinstance(exc, FileNotFoundError):
        return "file is missing"
    if isinstance(exc, PermissionError):
        return "permission denied"
    if isinstance(exc, IsADirectoryError):
        return "is a directory"
    if exc.errno == errno.ELOOP:
        return "symlink loop"
    return f"cannot read ({exc.strerror or exc})"


def _load_json(path: Path) -> tuple[Any, os.stat_result]:
    """Parse a JSON file, bounded in size; every failure is a ``StateFileError``."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise StateFileError(path, _os_problem(exc)) from None
    except (ValueError, TypeError) as exc:  # NUL in the path, wrong type
        raise StateFileError(path, f"invalid path ({exc})") from None
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise StateFileError(path, "is a directory")
        if not stat.S_ISREG(st.st_mode):
            raise StateFileError(path, "is not a regular file")
        if st.st_size > MAX_STATE_BYTES:
            raise StateFileError(
                path,
                f"file is too large ({size(st.st_size)} > {size(MAX_STATE_BYTES)} limit)",
            )
        chunks: list[bytes] = []
        total = 0
        while total <= MAX_STATE_BYTES:
            chunk = os.read(fd, min(1 << 20, MAX_STATE_BYTES + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
    except OSError as exc:
        raise StateFileError(path, _os_problem(exc)) from None
    finally:
        os.close(fd)
    if total > MAX_STATE_BYTES:
        raise StateFileError(
            path, f"file is too large (grew past the {size(MAX_STATE_BYTES)} limit)"
        )
    raw = b"".join(chunks)
    if not raw.strip():
        raise StateFileError(path, "file is empty")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise StateFileError(
            path, f"not valid UTF-8 (byte 0x{raw[exc.start]:02x} at offset {exc.start})"
        ) from None
    if not text.strip():
        raise StateFileError(path, "file is empty")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        stripped = len(text.rstrip())
        if exc.pos >= stripped or exc.msg.startswith("Unterminated string"):
            raise StateFileError(
                path,
                f"truncated JSON (ends at line {exc.lineno} column {exc.colno}; "
                "was it being written?)",
            ) from None
        raise StateFileError(
            path, f"not valid JSON (line {exc.lineno} column {exc.colno}: {exc.msg})"
        ) from None
    except RecursionError:
        raise StateFileError(path, "not valid JSON (nested too deeply)") from None
    except ValueError as exc:
        raise StateFileError(path, f"not valid JSON ({exc})") from None
    return data, st


def _has_offset(value: object) -> bool:
    """An ISO string that carries a UTC offset (``Z`` or ``+hh:mm``)."""
    if not isinstance(value, str) or ("T" not in value and " " not in value.strip()):
        return False
    s = value.strip()
    if s.endswith(("Z", "z")):
        return True
    tail = s[10:]  # after the date
    return "+" in tail or "-" in tail


def detect_format(data: dict[str, Any]) -> Format:
    """``"ohm"`` when marked or when an entry has an argv list or an offset time."""
    if data.get("format") == "ohm":
        return "ohm"
    entries: list[Any] = []
    active = data.get("active_agents")
    if isinstance(active, dict):
        entries.extend(active.values())
    completed = data.get("completed_agents")
    if isinstance(completed, list):
        entries.extend(completed)
    elif isinstance(completed, dict):
        entries.extend(completed.values())
    for e in entries:
        if isinstance(e, dict) and (
            isinstance(e.get("command"), list) or _has_offset(e.get("started_at"))
        ):
            return "ohm"
    return "real"


def _as_pid(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if 0 < value < 2**31 else None
    if isinstance(value, str) and value.strip().isdigit():
        n = int(value.strip())
        return n if 0 < n < 2**31 else None
    return None


def _opt_str(entry: dict[str, Any], key: str) -> str | None:
    value = entry.get(key)
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    raise ValueError(f"{key} must be text, got {_json_type(value)}")


def _opt_int(value: object) -> int | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            return int(value.strip())
    return None


def _split_command(value: object) -> tuple[list[str], str]:
    if value is None:
        return [], ""
    if isinstance(value, str):
        return split_command(value), value
    if isinstance(value, list):
        if not all(isinstance(a, str) for a in value):
            raise ValueError("command list must hold only strings")
        return list(value), shlex.join(value)
    raise ValueError(f"command must be text or a list, got {_json_type(value)}")


def record_from_entry(pid_key: str, entry: dict[str, Any], fmt: str, base_dir: Path) -> AgentRecord:
    """One state entry as an ``AgentRecord``. Raises ``ValueError`` when malformed.

    Relative ``cwd`` resolves against ``base_dir`` (the state file's folder);
    relative ``log_file`` against ``cwd`` (or ``base_dir`` without one).
    """
    if not isinstance(entry, dict):
        raise ValueError(f"entry is not an object (got {_json_type(entry)})")
    pid = _as_pid(entry.get("pid")) if "pid" in entry else _as_pid(pid_key)
    if pid is None:
        shown = entry.get("pid", pid_key)
        raise ValueError(f"pid {str(shown)[:40]!r} is not a process id")
    agent_type = _opt_str(entry, "agent_type") or "unknown"
    task_id = _opt_str(entry, "task_id")
    argv, command_text = _split_command(entry.get("command"))
    worktree = _opt_str(entry, "worktree_path")
    cwd = _opt_str(entry, "cwd") or worktree
    if cwd is not None and not os.path.isabs(cwd):
        cwd = str(base_dir / cwd)
    log_file = _opt_str(entry, "log_file") or _opt_str(entry, "log_path")
    if log_file is not None and not os.path.isabs(log_file):
        log_file = str(Path(cwd) / log_file if cwd else base_dir / log_file)
    started_at = timeutil.to_epoch(entry.get("started_at"))
    create_time = timeutil.to_epoch(entry.get("create_time"))
    status = _opt_str(entry, "status") or "running"
    source: Literal["real", "ohm"] = "ohm" if fmt == "ohm" else "real"
    return AgentRecord(
        key=agent_key(pid, started_at if started_at is not None else create_time),
        pid=pid,
        agent_type=agent_type,
        task_id=task_id,
        source=source,
        command=argv,
        command_text=command_text,
        cwd=cwd,
        log_file=log_file,
        started_at=started_at,
        status=status,
        exit_code=_opt_int(entry.get("exit_code")),
        create_time=create_time,
        worktree_path=worktree,
        raw=entry,
    )


def _check_shape(path: Path, data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise StateFileError(path, f"expected a JSON object at top level, got {_json_type(data)}")
    active = data.get("active_agents")
    if active is not None and not isinstance(active, dict):
        raise StateFileError(
            path, f"active_agents must be an object keyed by PID (got {_json_type(active)})"
        )
    return data


def read_agent_state(path: Path) -> AgentStateView:
    """Read ``agent_state.json`` in either format. Raises only ``StateFileError``."""
    path = Path(path)
    try:
        data, st = _load_json(path)
        data = _check_shape(path, data)
        fmt = detect_format(data)
        base_dir = path.parent.absolute()
        warnings: list[str] = []
        if "active_agents" not in data and data and "completed_agents" not in data:
            warnings.append("no active_agents key; treated as no agents")
        agents: list[AgentRecord] = []
        for key, entry in (data.get("active_agents") or {}).items():
            try:
                agents.append(record_from_entry(str(key), entry, fmt, base_dir))
            except ValueError as exc:
                warnings.append(f"active_agents[{str(key)[:40]!r}] skipped: {exc}")
        completed: list[AgentRecord] = []
        done = data.get("completed_agents")
        done_entries: list[Any]
        if done is None:
            done_entries = []
        elif isinstance(done, list):
            done_entries = done
        elif isinstance(done, dict):
            done_entries = list(done.values())
        else:
            warnings.append(f"completed_agents is {article(_json_type(done))}, not a list; ignored")
            done_entries = []
        for i, entry in enumerate(done_entries):
            try:
                pid_key = str(entry.get("pid")) if isinstance(entry, dict) else ""
                rec = record_from_entry(pid_key, entry, fmt, base_dir)
            except ValueError as exc:
                warnings.append(f"completed_agents[{i}] skipped: {exc}")
                continue
            if "status" not in entry:
                rec.status = "completed"
            completed.append(rec)
        orch_pid: int | None = None
        if data.get("orchestrator_pid") is not None:
            orch_pid = _as_pid(data.get("orchestrator_pid"))
            if orch_pid is None:
                warnings.append(
                    f"orchestrator_pid {str(data.get('orchestrator_pid'))[:40]!r} is not a pid"
                )
        return AgentStateView(
            path=path,
            format=fmt,
            agents=agents,
            completed=completed,
            orchestrator_pid=orch_pid,
            mtime=st.st_mtime,
            warnings=warnings,
        )
    except StateFileError:
        raise
    except Exception as exc:  # a bug here must not take the monitor down
        raise StateFileError(path, f"could not read ({type(exc).__name__}: {exc})") from exc


# The real orchestrator rewrites agent_state.json in place (truncate, then write),
# from up to three processes, with no lock: a reader can catch it empty or cut off.
_TORN = ("file is empty", "truncated JSON")
TORN_READ_DELAYS = (0.01, 0.03, 0.06, 0.1)


def read_agent_state_settled(
    path: Path, delays: tuple[float, ...] = TORN_READ_DELAYS
) -> AgentStateView:
    """``read_agent_state``, read again a few times while the file looks half-written;
    a file still torn after the last try is a ``StateFileError`` as before."""
    for delay in delays:
        try:
            return read_agent_state(path)
        except StateFileError as exc:
            if not exc.problem.startswith(_TORN):
                raise
        time.sleep(delay)
    return read_agent_state(path)


def _loop_time(
    data: dict[str, Any], keys: tuple[str, ...], now: float
) -> tuple[float | None, str | None]:
    """A loop timestamp from the first present key; ``(value, problem)``."""
    for key in keys:
        if key not in data:
            continue
        value = data[key]
        ts = timeutil.to_epoch(value)
        if ts is None:
            shown = repr(value)
            shown = shown if len(shown) <= 60 else shown[:59] + "…"
            return None, f"{key} is not a time: {shown}"
        if ts > now + FUTURE_TOLERANCE:
            return now, f"{key} is in the future by {int(ts - now)} s (clock skew?)"
        return ts, None
    return None, None


def read_work_loop_state(path: Path, now: float | None = None) -> LoopState:
    """Read ``work_loop_state.json``; problems are reported, never raised.

    ``last_update`` (epoch, real format) or ``last_poll`` (ISO, either kind) are
    both accepted. Bad or future times never become negative or absurd ages.
    """
    path = Path(path)
    ref = timeutil.now() if now is None else now
    state = LoopState(path, None, None, {}, None, None, None)
    try:
        data, st = _load_json(path)
    except StateFileError as exc:
        state.problem = exc.problem
        if exc.problem != "file is missing":
            with contextlib.suppress(OSError):
                state.mtime = path.stat().st_mtime
        return state
    state.mtime = st.st_mtime
    if not isinstance(data, dict):
        state.problem = f"expected a JSON object at top level, got {_json_type(data)}"
        return state
    problems: list[str] = []
    state.last_update, p = _loop_time(data, ("last_update", "last_poll"), ref)
    if p:
        problems.append(p)
    elif "last_update" not in data and "last_poll" not in data:
        problems.append("no last_update or last_poll")
    state.last_roadmap_update, p = _loop_time(data, ("last_roadmap_update",), ref)
    if p:
        problems.append(p)
    tasks = data.get("active_tasks")
    if isinstance(tasks, dict):
        state.active_tasks = tasks
    elif tasks is not None:
        problems.append(f"active_tasks is {article(_json_type(tasks))}, not an object")
    state.pid = _as_pid(data.get("pid", data.get("orchestrator_pid")))
    state.problem = "; ".join(problems) or None
    return state
