"""Writing ``agent_state.json`` as the orchestrator expects: under its ``flock``,
re-read, mutated, written to a temp file and swapped in with ``os.replace`` (or an
atomic exchange when the file changed meanwhile). Reading is ``statefile``.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import stat
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from ohm_tui.engine import timeutil
from ohm_tui.engine.fmt import article
from ohm_tui.engine.sources.statefile import (
    Format,
    StateFileError,
    _as_pid,
    _check_shape,
    _json_type,
    _load_json,
    _os_problem,
    detect_format,
)

T = TypeVar("T")
# seconds a timestamp may be ahead before it is clock skew
_UPDATE_TRIES = 5

# --------------------------------------------------------------------------- writing


def _lock_path(path: Path) -> Path:
    return path.with_name(path.name + ".lock")


@contextlib.contextmanager
def _flocked(path: Path, timeout: float) -> Any:
    """Hold ``<path>.lock`` exclusively; give up after ``timeout`` seconds."""
    lock = _lock_path(path)
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise StateFileError(path, f"cannot open lock file {lock}: {_os_problem(exc)}") from None
    try:
        deadline = time.monotonic() + max(0.0, timeout)
        delay = 0.001
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise StateFileError(
                        path, f"could not lock {lock} within {timeout:g} s"
                    ) from None
                time.sleep(delay)  # polling a lock, not waiting a fixed time
                delay = min(delay * 2, 0.05)
            except OSError as exc:
                raise StateFileError(path, f"cannot lock {lock}: {_os_problem(exc)}") from None
        yield
    finally:
        os.close(fd)  # closing releases the flock; the lock file stays for others


def _serialize(path: Path, data: dict[str, Any]) -> bytes:
    try:
        return (json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False) + "\n").encode()
    except (TypeError, ValueError, RecursionError) as exc:
        raise StateFileError(path, f"cannot write: data is not JSON ({exc})") from None


def _write_temp(path: Path, payload: bytes, like: os.stat_result | None) -> Path:
    """Write and fsync a temp file next to ``path`` with the original mode and owner."""
    try:
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise StateFileError(path, f"cannot write: {_os_problem(exc)}") from None
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
            if like is not None:
                os.fchmod(f.fileno(), stat.S_IMODE(like.st_mode))
                if os.geteuid() == 0 and (like.st_uid, like.st_gid) != (0, 0):
                    with contextlib.suppress(OSError):
                        os.fchown(f.fileno(), like.st_uid, like.st_gid)
            else:
                os.fchmod(f.fileno(), 0o644)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise StateFileError(path, f"cannot write: {_os_problem(exc)}") from None
    return tmp


def _sync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable (best effort)."""
    with contextlib.suppress(OSError):
        dfd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


def _commit(tmp: Path, path: Path, *, sync_dir: bool = True) -> None:
    try:
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise StateFileError(path, f"cannot replace: {_os_problem(exc)}") from None
    if sync_dir:
        _sync_dir(path.parent)


_AT_FDCWD = -100
_RENAME_EXCHANGE = 2
_exchange_fn: Any = None  # renameat2 from libc; False once known to be unavailable


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (``renameat2(RENAME_EXCHANGE)``); False when unsupported."""
    global _exchange_fn
    if _exchange_fn is None:
        try:
            import ctypes

            fn = ctypes.CDLL(None, use_errno=True).renameat2
            fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p]
            fn.argtypes += [ctypes.c_uint]
            fn.restype = ctypes.c_int
            _exchange_fn = fn
        except (OSError, AttributeError):
            _exchange_fn = False
    if _exchange_fn is False:
        return False
    import ctypes

    if _exchange_fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
        return False  # this kernel or file system cannot: plain replace instead
    raise OSError(err, os.strerror(err), str(b))


def _swap_in(tmp: Path, path: Path, sig: tuple[int, int, int]) -> str:
    """Put ``tmp`` in place of ``path`` only if ``path`` is still the file we read.

    A check followed by ``os.replace`` leaves a gap in which a writer that does
    not lock can replace the file, and its change would be lost. Swapping
    atomically hands back exactly the file we displaced: ours stays only if that
    was the one we read; otherwise theirs goes straight back and the caller
    redoes its change on it. Returns ``done``, ``raced`` or ``unsupported``.
    """
    try:
        ours = os.stat(tmp).st_ino
        if not _exchange(tmp, path):
            return "unsupported"
        if _signature(_stat_or_none(tmp)) == sig:
            tmp.unlink(missing_ok=True)  # what we displaced is what we read: done
            return "done"
        _exchange(tmp, path)  # theirs back in place at once
        back = _stat_or_none(tmp)
        if back is not None and back.st_ino != ours:
            _exchange(tmp, path)  # a newer write replaced ours meanwhile: it wins
        tmp.unlink(missing_ok=True)
        return "raced"
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise StateFileError(path, f"cannot replace: {_os_problem(exc)}") from None


def write_agent_state_atomic(path: Path, data: dict[str, Any]) -> None:
    """Temp file + fsync + ``os.replace``: readers see the old or the new file, never half."""
    path = Path(path)
    payload = _serialize(path, data)
    try:
        like: os.stat_result | None = path.stat()
    except OSError:
        like = None
    _commit(_write_temp(path, payload, like), path)


def _signature(st: os.stat_result | None) -> tuple[int, int, int] | None:
    return None if st is None else (st.st_mtime_ns, st.st_size, st.st_ino)


def _stat_or_none(path: Path) -> os.stat_result | None:
    try:
        return os.stat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StateFileError(path, _os_problem(exc)) from None


def update_agent_state(
    path: Path, mutate: Callable[[dict[str, Any]], T], *, lock_timeout: float = 10.0
) -> T:
    """Change the orchestrator's state file without losing anyone else's change.

    Under the sidecar lock the file is re-read, ``mutate`` edits the dict in
    place, and the result replaces the file atomically. If the file changed
    under us anyway (a writer that does not lock), the read and ``mutate`` are
    repeated on the new content, so ``mutate`` must be safe to run again on
    fresh data. An invalid file is never overwritten. Returns what the last
    ``mutate`` call returned.
    """
    path = Path(path)
    with _flocked(path, lock_timeout):
        for attempt in range(_UPDATE_TRIES):
            if attempt:  # back off a little so a burst of foreign writes can pass
                time.sleep(0.002 * 2**attempt)
            before = _stat_or_none(path)
            if before is None:
                data: dict[str, Any] = {"active_agents": {}, "completed_agents": []}
                sig = None
            else:
                loaded, st = _load_json(path)
                data = _check_shape(path, loaded)
                before, sig = st, _signature(st)
            result = mutate(data)
            payload = _serialize(path, data)
            tmp = _write_temp(path, payload, before)
            if _signature(_stat_or_none(path)) != sig:
                tmp.unlink(missing_ok=True)  # someone wrote meanwhile: redo on their data
                continue
            if sig is not None:
                swapped = _swap_in(tmp, path, sig)
                if swapped == "done":
                    break
                if swapped == "raced":
                    continue
            _commit(tmp, path, sync_dir=False)
            break
        else:
            raise StateFileError(
                path,
                f"file kept changing while ohm wrote it ({_UPDATE_TRIES} tries); "
                "another writer does not take the lock",
            )
    _sync_dir(path.parent)  # durability of the rename needs no lock
    return result


# --------------------------------------------------------------------------- mutate helpers


def move_to_completed(
    data: dict[str, Any],
    pid_key: str,
    *,
    completed_at: float,
    status: str = "completed",
    exit_code: int | None = None,
    reason: str | None = None,
    fmt: Format | None = None,
) -> bool:
    """Move one active entry to ``completed_agents``, as the orchestrator itself does.

    ``completed_at`` is written in the file's own time form. Nothing is trimmed
    and nothing is dropped: False when the entry is not there. Pass ``fmt``
    (``detect_format(data)``) when moving many entries: detecting it scans the
    whole file, once per call otherwise.
    """
    active = data.get("active_agents")
    if not isinstance(active, dict) or pid_key not in active:
        return False
    completed = data.get("completed_agents")
    if completed is None:
        completed = data["completed_agents"] = []
    if not isinstance(completed, (list, dict)):
        raise ValueError(f"completed_agents is {article(_json_type(completed))}, not a list")
    if fmt is None:
        fmt = detect_format(data)
    entry = active.pop(pid_key)
    if not isinstance(entry, dict):
        entry = {"pid": _as_pid(pid_key), "original": entry}
    entry["status"] = status
    entry["completed_at"] = (
        timeutil.iso_utc(completed_at) if fmt == "ohm" else timeutil.iso_local_naive(completed_at)
    )
    if exit_code is not None:
        entry["exit_code"] = exit_code
    if reason:
        entry["reason"] = reason
    if isinstance(completed, dict):
        completed[pid_key] = entry
    else:
        completed.append(entry)
    return True


def add_active_entry(data: dict[str, Any], entry: dict[str, Any]) -> None:
    """Add (or replace) an active entry under its PID string, the file's key."""
    active = data.get("active_agents")
    if active is None:
        active = data["active_agents"] = {}
    if not isinstance(active, dict):
        raise ValueError(f"active_agents is {article(_json_type(active))}, not an object")
    active[str(entry["pid"])] = entry
