"""A process as the kernel's process table shows it (a plain record, no I/O)."""

from __future__ import annotations

from dataclasses import dataclass

# psutil-style names for the one-letter states of /proc/<pid>/stat.
STATE_NAMES: dict[str, str] = {
    "R": "running",
    "S": "sleeping",
    "D": "disk-sleep",
    "Z": "zombie",
    "T": "stopped",
    "t": "tracing-stop",
    "X": "dead",
    "x": "dead",
    "I": "idle",
    "K": "wake-kill",
    "W": "waking",
    "P": "parked",
}


@dataclass(slots=True)
class RawProc:
    """One process as one line of ``/proc/<pid>/stat`` describes it."""

    pid: int
    ppid: int
    state: str  # one char: R S D Z T t I X
    start_time: float  # UTC epoch seconds, same clock as psutil's create_time
    cpu_ticks: int  # utime + stime, in 1/CLK_TCK s
    rss_bytes: int
    name: str = ""  # comm (15 chars at most); never use it as an identity

    @property
    def key(self) -> tuple[int, float]:
        return (self.pid, self.start_time)

    @property
    def status(self) -> str:
        """The state as psutil names it (``"zombie"``, ``"sleeping"``...)."""
        return STATE_NAMES.get(self.state, "unknown")
