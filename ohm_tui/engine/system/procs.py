"""The process table, process identity, signals and spawning.

Everything here reads ``/proc`` directly when it can: one check over a thousand
agents must cost a few milliseconds, and psutil's per-process objects cost far
more. psutil is the fallback where ``/proc`` is missing, and the guard it keeps
(create time checked before a signal) is used where a pidfd cannot be had.

A PID is never an identity on its own: PIDs are reused. A process is "ours" only
when its start time matches what we recorded (see ``identity_matches``), and no
signal is sent without that check.

Agents are spawned through ``runner.py`` (a stdlib-only supervisor-of-one that
records the exit code even when ohm is gone), started as
``python -S -E -P runner.py``: it never imports ohm, so it starts in ~10 ms. To
shave that off respawns, one runner is kept started and waiting ("warm spare")
after the first spawn; see ``spawner.Spawner``.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

import psutil

from ohm_tui.engine.model.process import STATE_NAMES, RawProc

log = logging.getLogger(__name__)

_PROC = "/proc"
HAVE_PROC = os.path.exists("/proc/self/stat") and os.path.exists("/proc/stat")

try:
    CLK_TCK: int = os.sysconf("SC_CLK_TCK")
except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
    CLK_TCK = 100
try:
    PAGE_SIZE: int = os.sysconf("SC_PAGE_SIZE")
except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
    PAGE_SIZE = 4096

RUNNER_PATH = str(Path(__file__).with_name("runner.py").resolve())

# Two start times of one process computed at different moments can differ by a
# whole second: the kernel's ``btime`` is whole seconds and flips when the wall
# clock is slewed across a boundary (psutil has the same property). Tick
# resolution is 1/CLK_TCK, so 0.05 s is "the same tick" with room to spare.
START_TIME_EPSILON = 0.05

_PSUTIL_STATES = {v: k for k, v in STATE_NAMES.items() if k not in ("x",)}
_PSUTIL_STATES["waiting"] = "S"
_PSUTIL_STATES["locked"] = "D"


# ----------------------------------------------------------------- boot time
_btime_lock = threading.Lock()
_btime: tuple[float, float] | None = None  # (btime, monotonic when read)
_BTIME_REFRESH = 1.0


def boot_time() -> float:
    """Boot time as ``/proc/stat`` says (what psutil adds to start ticks).

    Re-read at most once a second: cheap, and it keeps our start times equal to
    psutil's even after the wall clock was stepped.
    """
    global _btime
    cached = _btime
    mono = time.monotonic()
    if cached is not None and mono - cached[1] < _BTIME_REFRESH:
        return cached[0]
    value: float | None = None
    if HAVE_PROC:
        try:
            with open("/proc/stat", "rb") as f:
                for line in f:
                    if line.startswith(b"btime"):
                        value = float(line.split()[1])
                        break
        except (OSError, ValueError, IndexError):
            value = None
    if value is None:
        value = psutil.boot_time()
    with _btime_lock:
        _btime = (value, mono)
    return value


def ticks_to_epoch(start_ticks: int) -> float:
    """Start ticks since boot (field 22 of /proc/<pid>/stat) as UTC epoch seconds."""
    return start_ticks / CLK_TCK + boot_time()


def same_start(a: float, b: float) -> bool:
    """Two start times of the same process (allowing a whole-second btime flip)."""
    d = abs(a - b)
    return d <= START_TIME_EPSILON or abs(d - 1.0) <= START_TIME_EPSILON


# ----------------------------------------------------------------- reading /proc
def _read_small(path: str) -> bytes:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return os.read(fd, 4096)
    finally:
        os.close(fd)


def _parse_stat(pid: int, data: bytes, btime: float) -> RawProc | None:
    # The comm field is in parentheses and may itself hold spaces and ')':
    # everything after the LAST ')' is plain numbers. (Hot path: ~1,000 calls
    # per check, hence positional arguments and a bounded split.)
    close = data.rfind(b")")
    if close < 0:
        return None
    try:
        rest = data[close + 2 :].split(None, 22)
        return RawProc(
            pid,
            int(rest[1]),  # ppid
            chr(rest[0][0]),  # state
            int(rest[19]) / CLK_TCK + btime,  # starttime
            int(rest[11]) + int(rest[12]),  # utime + stime
            int(rest[21]) * PAGE_SIZE,  # rss pages
            data[data.find(b"(") + 1 : close].decode("utf-8", "replace"),
        )
    except (ValueError, IndexError):
        return None


def _from_psutil(p: psutil.Process) -> RawProc | None:
    try:
        with p.oneshot():
            ct = p.cpu_times()
            return RawProc(
                pid=p.pid,
                ppid=p.ppid(),
                state=_PSUTIL_STATES.get(p.status(), "S"),
                start_time=p.create_time(),
                cpu_ticks=round((ct.user + ct.system) * CLK_TCK),
                rss_bytes=p.memory_info().rss,
                name=p.name(),
            )
    except (psutil.Error, OSError):
        return None


def read_proc(pid: int) -> RawProc | None:
    """One process, or ``None`` when it is gone (or hidden from us)."""
    if pid <= 0:
        return None
    if HAVE_PROC:
        try:
            data = _read_small(f"{_PROC}/{pid}/stat")
        except OSError:
            return None
        return _parse_stat(pid, data, boot_time())
    try:
        return _from_psutil(psutil.Process(pid))
    except (psutil.Error, OSError):
        return None


def scan_processes() -> dict[int, RawProc]:
    """Every process in one pass over /proc; processes that vanish mid-scan are skipped."""
    out: dict[int, RawProc] = {}
    if not HAVE_PROC:
        for p in psutil.process_iter():
            raw = _from_psutil(p)
            if raw is not None:
                out[raw.pid] = raw
        return out
    btime = boot_time()
    read = os.read
    opn = os.open
    cls = os.close
    flags = os.O_RDONLY | os.O_CLOEXEC
    try:
        dfd = opn(_PROC, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return out
    try:
        for name in os.listdir(dfd):
            if not name.isdigit():
                continue
            try:
                fd = opn(name + "/stat", flags, dir_fd=dfd)  # relative: no path walk from /
            except OSError:
                continue  # exited since listdir
            try:
                data = read(fd, 4096)
            except OSError:
                continue
            finally:
                cls(fd)
            raw = _parse_stat(int(name), data, btime)
            if raw is not None:
                out[raw.pid] = raw
    finally:
        cls(dfd)
    return out


def create_time(pid: int) -> float | None:
    """Start time of ``pid`` as UTC epoch seconds (psutil's ``create_time``), or ``None``."""
    raw = read_proc(pid)
    return raw.start_time if raw is not None else None


def cmdline(pid: int) -> list[str] | None:
    """argv of ``pid`` (``[]`` for kernel threads and zombies); ``None`` if gone or denied."""
    if not HAVE_PROC:
        try:
            return psutil.Process(pid).cmdline()
        except (psutil.Error, OSError):
            return None
    try:
        with open(f"{_PROC}/{pid}/cmdline", "rb") as f:
            data = f.read()
    except OSError:
        return None
    if not data:
        return []
    if data.endswith(b"\0"):
        data = data[:-1]
    return [a.decode("utf-8", "surrogateescape") for a in data.split(b"\0")]


# ----------------------------------------------------------------- identity
def read_cwd(pid: int) -> str | None:
    """The working directory of ``pid``; ``None`` when gone or not ours to read."""
    try:
        path = os.readlink(f"/proc/{pid}/cwd")
        return path.removesuffix(" (deleted)")  # gone now: its respawn will say so
    except OSError:
        try:
            cwd: str = psutil.Process(pid).cwd()
            return cwd or None
        except (psutil.Error, OSError):
            return None


def _command_matches(pid: int, command: list[str]) -> bool:
    argv = cmdline(pid)
    if not argv or not command:
        return False
    joined = " ".join(argv)
    exe = os.path.basename(command[0])
    if not exe or exe not in joined:
        return False
    return len(command) == 1 or command[-1] in argv or command[-1] in joined


def identity_matches(
    pid: int,
    *,
    started_at: float | None,
    create_time: float | None = None,
    tolerance: float = 5.0,
    command: list[str] | None = None,
    raw: RawProc | None = None,
) -> bool:
    """Is ``pid`` still the process a record describes?

    ``create_time`` (exact, from when we saw the process) wins over
    ``started_at`` (written by whoever spawned it, just after the spawn, so
    within ``tolerance``). With neither, the command line must match. Unknown
    identity never matches. A zombie matches: callers look at ``raw.state``.
    """
    if raw is None or raw.pid != pid:
        raw = read_proc(pid)
    if raw is None:
        return False
    if create_time is not None:
        return same_start(raw.start_time, create_time)
    if started_at is not None:
        return raw.start_time <= started_at + tolerance and started_at - raw.start_time <= tolerance
    if command:
        return _command_matches(pid, command)
    return False


# ----------------------------------------------------------------- CPU
class CpuSampler:
    """CPU % between two looks at a process, without sleeping in between."""

    __slots__ = ("_last",)

    def __init__(self) -> None:
        self._last: dict[tuple[int, float], tuple[int, float, float | None]] = {}

    def sample(self, raw: RawProc, now: float) -> float | None:
        """CPU % since the previous sample of this process; ``None`` on first sight.

        ``now`` should come from ``time.monotonic()`` (any clock works if it is
        always the same one). Samples closer than 10 ms repeat the last value:
        ticks are 10 ms, so a shorter window is noise.
        """
        key = (raw.pid, raw.start_time)
        prev = self._last.get(key)
        if prev is None:
            self._last[key] = (raw.cpu_ticks, now, None)
            return None
        ticks, then, last_pct = prev
        dt = now - then
        if dt < 0.01:
            return last_pct
        pct = max(0.0, (raw.cpu_ticks - ticks) / CLK_TCK / dt * 100.0)
        self._last[key] = (raw.cpu_ticks, now, pct)
        return pct

    def forget_missing(self, alive: set[tuple[int, float]]) -> None:
        """Drop state of processes not in ``alive`` (keys are ``(pid, start_time)``)."""
        for key in [k for k in self._last if k not in alive]:
            del self._last[key]


# ----------------------------------------------------------------- zombies, orchestrators
def find_zombies(
    procs: dict[int, RawProc],
    parents: set[int] | None = None,
    pids: set[int] | None = None,
) -> list[RawProc]:
    """Zombies whose parent is in ``parents`` or whose pid is in ``pids`` (both None: all)."""
    zombies = [p for p in procs.values() if p.state == "Z"]
    if parents is None and pids is None:
        return zombies
    return [
        z
        for z in zombies
        if (parents is not None and z.ppid in parents) or (pids is not None and z.pid in pids)
    ]


class CmdlineCache:
    """argv per process run: argv of a running process rarely changes, and
    reading it for every process on every check is the expensive part.

    A process caught between fork and exec still shows its parent's argv, so
    entries are keyed by (pid, start time, comm) and young processes are not
    cached at all.
    """

    __slots__ = ("_cache", "_lock", "min_age")

    def __init__(self, min_age: float = 3.0) -> None:
        self._cache: dict[tuple[int, float, str], list[str]] = {}
        self._lock = threading.Lock()
        self.min_age = min_age  # start times can read up to 1 s early (whole-second btime)

    def get(self, raw: RawProc, now: float | None = None) -> list[str] | None:
        key = (raw.pid, raw.start_time, raw.name)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        argv = cmdline(raw.pid)
        if argv and (time.time() if now is None else now) - raw.start_time >= self.min_age:
            with self._lock:
                self._cache[key] = argv
        return argv

    def prune(self, procs: dict[int, RawProc]) -> None:
        """Forget processes that are no longer in ``procs``."""
        with self._lock:
            stale = [
                k
                for k in self._cache
                if (p := procs.get(k[0])) is None or (p.start_time, p.name) != k[1:]
            ]
            for k in stale:
                del self._cache[k]

    def __len__(self) -> int:
        return len(self._cache)


CMDLINES = CmdlineCache()


def _ancestors(procs: dict[int, RawProc], pid: int) -> set[int]:
    out: set[int] = set()
    while pid > 0 and pid not in out:
        out.add(pid)
        raw = procs.get(pid)
        if raw is None:
            break
        pid = raw.ppid
    return out


# Runners of this and of older ohm versions (before the system room) still running.
_RUNNER_TAILS = ("/ohm_tui/engine/system/runner.py", "/ohm_tui/engine/runner.py")
RUNNER_COMM = "ohm-runner"  # runner.py names itself so in /proc/<pid>/comm


def _is_runner(raw: RawProc, argv: list[str]) -> bool:
    if raw.name == RUNNER_COMM:
        return True
    return any(a == RUNNER_PATH or a.endswith(_RUNNER_TAILS) for a in argv[:6])


def find_orchestrators(
    procs: dict[int, RawProc],
    match: list[str],
    exclude: set[int] | None = None,
    *,
    cache: CmdlineCache | None = None,
) -> list[int]:
    """PIDs whose command line holds every ``match`` substring (sorted).

    Skips zombies, kernel threads, this process and its ancestors, ``exclude``,
    and ohm's own runner wrappers (their argv holds the command they run).
    """
    if not match:
        return []
    cache = CMDLINES if cache is None else cache
    skip = _ancestors(procs, os.getpid())
    if exclude:
        skip |= exclude
    found: list[int] = []
    now = time.time()
    for raw in procs.values():
        if raw.pid in skip or raw.state in "ZXx" or raw.pid == 2 or raw.ppid == 2:
            continue
        argv = cache.get(raw, now)
        if not argv:
            continue
        joined = " ".join(argv)
        if all(m in joined for m in match) and not _is_runner(raw, argv):
            found.append(raw.pid)
    cache.prune(procs)
    found.sort()
    return found


# ----------------------------------------------------------------- identity, now
def is_running(pid: int, start: float) -> bool:
    """THE rule for "is this still the same process": it is there, not a zombie, and
    started when we saw it start (``same_start``). Every caller asks this one."""
    raw = read_proc(pid)
    return raw is not None and raw.state not in "ZXx" and same_start(raw.start_time, start)
