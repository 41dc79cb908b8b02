"""Log tails and the one sanitizer: read the end (or the new part) of an agent's log
safely (regular files only, bounded, never blocking on a FIFO), and make agent text
inert for terminals. Parsing what was read is ``logparse``.
"""

from __future__ import annotations

import os
import re
import stat

_RUNNER_PREFIX = "[ohm-runner] "
_MAX_LINE = 4000  # one returned log line is never longer than this

# --------------------------------------------------------------------------- reading


def _open_regular(path: str | os.PathLike[str]) -> int | None:
    """An fd for a regular file, or None. O_NONBLOCK so a FIFO never hangs us."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except (OSError, ValueError, TypeError):
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            return None
    except OSError:
        os.close(fd)
        return None
    return fd


def _read_at(fd: int, start: int, length: int) -> bytes:
    """Read up to ``length`` bytes at ``start`` (pread when available)."""
    chunks: list[bytes] = []
    got = 0
    while got < length:
        try:
            if hasattr(os, "pread"):
                chunk = os.pread(fd, length - got, start + got)
            else:  # pragma: no cover - non-POSIX
                os.lseek(fd, start + got, os.SEEK_SET)
                chunk = os.read(fd, length - got)
        except OSError:
            break
        if not chunk:
            break
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def _tail(path: str | os.PathLike[str] | None, max_bytes: int) -> tuple[bytes, bool]:
    """The last ``max_bytes`` bytes and whether they start in the middle of a line."""
    if path is None or max_bytes <= 0:
        return b"", False
    fd = _open_regular(path)
    if fd is None:
        return b"", False
    try:
        size = os.fstat(fd).st_size
        start = max(0, size - max_bytes)
        if start == 0:
            return _read_at(fd, 0, max_bytes), False
        # One byte more tells whether the tail begins right after a newline.
        data = _read_at(fd, start - 1, max_bytes + 1)
        if not data:
            return b"", False
        return data[1:], data[:1] != b"\n"
    except OSError:
        return b"", False
    finally:
        os.close(fd)


def tail_bytes(path: str | os.PathLike[str] | None, max_bytes: int = 65536) -> bytes:
    """The last ``max_bytes`` of a file, read from the end; ``b""`` when unreadable."""
    return _tail(path, max_bytes)[0]


def _decode_tail(data: bytes, mid_line: bool) -> str:
    if mid_line:
        nl = data.find(b"\n")
        if 0 <= nl < len(data) - 1:  # a partial line that is the only line is kept
            data = data[nl + 1 :]
    return data.decode("utf-8", errors="replace")


def tail_text(path: str | os.PathLike[str] | None, max_bytes: int = 65536) -> str:
    """``tail_bytes`` decoded leniently, without the cut first line."""
    data, mid_line = _tail(path, max_bytes)
    return _decode_tail(data, mid_line)


def read_new(
    path: str | os.PathLike[str] | None, offset: int, max_bytes: int = 65536
) -> tuple[int, str]:
    """Text appended since ``offset``, and the offset to pass next time.

    A trailing partial line is left for the next call so a record being written
    is never split in two (unless one line alone fills ``max_bytes``). A file
    that shrank was truncated or rotated: reading restarts from its beginning,
    bounded to its last ``max_bytes``. More than ``max_bytes`` new bytes: only
    the last ``max_bytes`` are read. A missing file gives ``(0, "")``. (A file
    replaced by a bigger one between two calls looks like appends: sizes are all
    this API keeps.)
    """
    if path is None:
        return 0, ""
    fd = _open_regular(path)
    if fd is None:
        return 0, ""
    try:
        max_bytes = max(1, max_bytes)
        size = os.fstat(fd).st_size
        offset = max(0, offset)
        start = offset if size >= offset else 0
        skipped = False
        if size - start > max_bytes:
            start, skipped = size - max_bytes, True
        if start >= size:
            return size, ""
        data = _read_at(fd, start, size - start)
        if skipped and start > 0 and _read_at(fd, start - 1, 1) != b"\n":
            nl = data.find(b"\n")
            if 0 <= nl < len(data) - 1:
                data = data[nl + 1 :]
                start = size - len(data)
        end = data.rfind(b"\n")
        if end >= 0:
            consumed = data[: end + 1]
        elif len(data) >= max_bytes:
            consumed = data  # one huge line: do not wait forever for its end
        else:
            consumed = b""
        return start + len(consumed), consumed.decode("utf-8", errors="replace")
    except OSError:
        return 0, ""
    finally:
        os.close(fd)


def line_at(path: str | os.PathLike[str] | None, offset: int, max_bytes: int = 4096) -> str:
    """The line that starts at ``offset``, at most ``max_bytes`` of it; ``""`` when unreadable.

    ``read_new`` skips to the tail when more than its budget arrived at once; the
    skipped part starts with a line whose beginning (say ``... ERROR - ...`` in
    front of a 5 MB payload) is the part that says what it is.
    """
    if path is None or offset < 0 or max_bytes <= 0:
        return ""
    fd = _open_regular(path)
    if fd is None:
        return ""
    try:
        data = _read_at(fd, offset, max_bytes)
    finally:
        os.close(fd)
    nl = data.find(b"\n")
    return (data if nl < 0 else data[:nl]).decode("utf-8", errors="replace")


# --------------------------------------------------------------------------- sanitizing

# OSC (incl. 52 clipboard, 8 links) and DCS/SOS/PM/APC strings run to their
# terminator; without one they are dropped up to the end of the line.
_ESCAPES = re.compile(
    r"(?:\x1b\]|\x9d)[^\x07\x1b\x9c\n]*(?:\x07|\x1b\\|\x9c)?"
    r"|(?:\x1b[PX^_]|[\x90\x98\x9e\x9f])[^\x07\x1b\x9c\n]*(?:\x07|\x1b\\|\x9c)?"
    r"|(?:\x1b\[|\x9b)[\x30-\x3f]*[\x20-\x2f]*[\x40-\x7e]?"
    r"|\x1b[\x20-\x2f]*[\x30-\x7e]?"
)
_ESCAPE_STARTS = ("\x1b", "\x90", "\x98", "\x9b", "\x9d", "\x9e", "\x9f")
# C0 except \t and \n, DEL, C1, and the bidi overrides that reorder what people see.
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def sanitize(text: str) -> str:
    """Make agent text inert for terminals: no escape sequences, no control bytes.

    ``\\r\\n`` and lone ``\\r`` become ``\\n``; tabs and newlines stay. Rich markup
    such as ``[bold]`` is left alone on purpose: escaping it is the faces' job.
    """
    if not text:
        return ""
    if any(c in text for c in _ESCAPE_STARTS):  # the common case skips the slow regex
        text = _ESCAPES.sub("", text)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return _CONTROLS.sub("", text)


def _clip(text: str, max_len: int) -> str:
    if max_len <= 0:
        return ""
    return text if len(text) <= max_len else text[: max_len - 1] + "…"


def last_line(text: str, max_len: int = 200) -> str | None:
    """The last non-empty line, sanitized and clipped to ``max_len`` characters."""
    if not text:
        return None
    end = len(text)
    while end > 0:
        start = text.rfind("\n", 0, end) + 1
        line = sanitize(text[start:end])
        # sanitize may turn a \r into \n: keep the part shown last.
        parts = [p.strip() for p in line.split("\n") if p.strip()]
        if parts:
            return _clip(parts[-1], max_len)
        end = start - 1
    return None


def agent_last_line(text: str, max_len: int = 200) -> str | None:
    """The agent's own last line: ohm's runner appends "[ohm-runner] agent pid N exited
    with code C" after the agent's last words, and must not speak for it."""
    if _RUNNER_PREFIX not in text:
        return last_line(text, max_len)
    own = "\n".join(ln for ln in text.split("\n") if not ln.startswith(_RUNNER_PREFIX))
    return last_line(own, max_len)
