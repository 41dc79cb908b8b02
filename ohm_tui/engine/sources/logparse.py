"""Read agent logs safely and say why an agent died.

Logs are written by programs we do not control: they can be a gigabyte long,
hold one 5 MB line, invalid UTF-8, NUL bytes, or escape sequences that would
rewrite the operator's clipboard (OSC 52) or plant links (OSC 8). Everything
here reads a bounded tail, decodes with replacement, never raises on bad input,
and ``sanitize`` makes text inert before anything shows it.

Crash grouping follows Sentry's idea: an error type plus the in-project frames
(paths normalised, line numbers dropped), so the same crash from another PID or
another checkout of the project lands in the same group.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import re

from ohm_tui.engine.model import CrashInfo
from ohm_tui.engine.sources.logtail import _MAX_LINE, _RUNNER_PREFIX, _clip, sanitize

__all__ = [
    "error_lines",
    "fingerprint",
    "frames_of",
    "has_traceback",
    "parse_crash",
    "root_cause",
]

Frame = tuple[str, int, str]

TRACEBACK_HEADER = "Traceback (most recent call last):"
_CHAIN_SEPARATORS = (
    "During handling of the above exception, another exception occurred:",
    "The above exception was the direct cause of the following exception:",
)
_EXCERPT_LINES = 40
_MAX_MESSAGE = 2000
_MAX_TRACE = 64 * 1024

# --------------------------------------------------------------------------- error lines

_TS = r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(?:[,.]\d+)?(?:Z|[+-]\d\d:?\d\d)?"
# ``%(asctime)s - %(name)s - %(levelname)s - %(message)s``
_LOG_RECORD = re.compile(rf"^\s*{_TS} - (?P<name>\S+) - (?P<level>[A-Z]+) - (?P<msg>.*)$")
_ERROR_RECORD = re.compile(
    rf"^\s*{_TS} - \S+ - (?P<level>ERROR|CRITICAL|FATAL) - (?P<msg>.*)$"
    r"|^\s*(?:\[\s*)?(?P<plevel>ERROR|CRITICAL|FATAL)(?:\s*\])?(?::|\s)\s*(?P<pmsg>.*)$"
)
_LOG_START = re.compile(rf"^\s*{_TS}\b|^\s*\[?(?:DEBUG|INFO|WARNING|WARN|ERROR|CRITICAL|FATAL)\b")


def error_lines(text: str) -> list[str]:
    """Lines that are ERROR/CRITICAL log records or the start of a traceback.

    Lines come back sanitized and clipped, so a 5 MB line costs one match, not
    a 5 MB string in an issue.
    """
    out: list[str] = []
    if not text:
        return out
    for raw in sanitize(text).split("\n"):
        line = raw.rstrip()
        if not line:
            continue
        if line.strip().endswith(TRACEBACK_HEADER) or _ERROR_RECORD.match(line):
            out.append(_clip(line, _MAX_LINE))
    return out


def has_traceback(text: str) -> bool:
    """Whether the text holds a Python traceback header."""
    return bool(text) and TRACEBACK_HEADER in text


# --------------------------------------------------------------------------- frames

_FRAME = re.compile(r'^[ \t|+]*File "(?P<file>[^"\n]+)", line (?P<line>\d+)(?:, in (?P<func>.+))?$')
_EXC_LINE = re.compile(r"^(?P<type>[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)(?::\s?(?P<msg>.*))?$")
_EXC_LIKE = re.compile(
    r"(?:Error|Exception|Interrupt|Exit|Warning|Timeout|Failure|Fault|Iteration|Group)$"
)
_STDLIB = re.compile(
    r"[/\\](?:site|dist)-packages[/\\]|[/\\]lib[/\\](?:python|pypy)\d+(?:\.\d+)*[/\\]"
    r"|[/\\]Lib[/\\]|^<frozen "
)


def frames_of(trace: str) -> list[Frame]:
    """``(file, line, function)`` of each ``File "...", line N, in f`` line.

    A frame without a function (the location line of a SyntaxError) has ``""``.
    """
    out: list[Frame] = []
    if not trace:
        return out
    for line in trace.splitlines():
        if "File " not in line:
            continue
        m = _FRAME.match(line.rstrip())
        if m:
            func = (m.group("func") or "").strip()
            out.append((m.group("file"), int(m.group("line")[:12]), func[:200]))
    return out


def _is_library(path: str) -> bool:
    return bool(_STDLIB.search(path))


def _project_frames(frames: list[Frame]) -> list[Frame]:
    """Frames in the project's own code; all frames when there are none."""
    own = [f for f in frames if not _is_library(f[0])]
    return own or list(frames)


_PACKAGES = re.compile(r"/(?:site|dist)-packages/(.+)$")


def _short_path(path: str) -> str:
    """A readable path: after site-packages, else the last two components."""
    p = path.replace("\\", "/")
    m = _PACKAGES.search(p)
    if m:
        return m.group(1)
    if not p.startswith("/"):
        return p
    parts = [x for x in p.split("/") if x]
    return "/".join(parts[-2:])


def _where(frames: list[Frame]) -> str:
    if not frames:
        return ""
    file, line, func = _project_frames(frames)[-1]
    loc = f"{_short_path(file)}:{line}"
    return f" in {func} ({loc})" if func else f" ({loc})"


# --------------------------------------------------------------------------- root cause


def _q(s: str) -> str:
    """Undo the quoting Python puts around names in messages."""
    s = s.strip()
    if len(s) >= 2 and s[0] == s[-1] and s[0] in "'\"":
        return s[1:-1]
    return s


def _module_file(module: str, location: str | None) -> str:
    """``a.b`` -> ``a/b.py`` (or ``a/b/__init__.py`` when the location says so)."""
    rel = module.replace(".", "/")
    loc = (location or "").replace("\\", "/")
    if loc.endswith(f"{rel}/__init__.py") or (not module and loc.endswith("__init__.py")):
        return f"{rel}/__init__.py"
    return f"{rel}.py"


_IMPORT_NAME = re.compile(
    r"cannot import name '(?P<name>[^']+)' from (?P<partial>partially initialized module )?"
    r"'(?P<module>[^']+)'(?: \(most likely due to a circular import\))?(?: \((?P<loc>[^)]*)\))?"
)
_NO_MODULE = re.compile(r"No module named '(?P<module>[^']+)'")
_MODULE_ATTR = re.compile(
    r"(?P<partial>partially initialized )?module '(?P<module>[^']+)'"
    r" has no attribute '(?P<attr>[^']+)'"
)
_OBJECT_ATTR = re.compile(r"'(?P<cls>[^']+)' object has no attribute '(?P<attr>[^']+)'")
_ERRNO_PATH = re.compile(r"^\[Errno \d+\] (?P<what>[^:]+): (?P<path>.+)$")
_NAME_UNDEFINED = re.compile(r"name '(?P<name>[^']+)' is not defined(?P<hint>.*)$")
_MISSING_ARG = re.compile(
    r"^(?P<func>\S+\(\)) missing \d+ required (?:positional |keyword-only )?"
    r"arguments?: (?P<args>.+)$"
)
_UNEXPECTED_KW = re.compile(
    r"^(?P<func>\S+\(\)) got an unexpected keyword argument '(?P<arg>[^']+)'"
)
_ARG_COUNT = re.compile(r"^(?P<func>\S+\(\)) takes .+ but .+ (?:was|were) given$")


def _base(error_type: str) -> str:
    return error_type.rsplit(".", 1)[-1]


def root_cause(error_type: str | None, message: str | None, frames: list[Frame]) -> str | None:
    """A sentence a person can act on, e.g. ``Missing SkillNames export in a/b.py``."""
    msg = sanitize(message or "").strip()
    msg = " ".join(msg.split()) if "\n" in msg else msg
    msg = _clip(msg, 500)
    where = _where(frames)
    if error_type is None:
        if not frames and not msg:
            return None
        return _clip(f"Error{where}" + (f": {msg}" if msg else ""), 500)
    etype = sanitize(error_type).strip()
    base = _base(etype)
    cause: str | None = None

    if base in ("ImportError", "ModuleNotFoundError"):
        m = _IMPORT_NAME.search(msg)
        no_mod = _NO_MODULE.search(msg)
        if m:
            name, module, loc = m.group("name"), m.group("module"), m.group("loc")
            if module == "__main__":
                where_file = _short_path(loc) if loc and loc != "unknown location" else "__main__"
            elif loc == "unknown location":
                where_file = f"{module.replace('.', '/')} (unknown location)"
            else:
                where_file = _module_file(module, loc)
            if m.group("partial"):
                cause = f"Circular import: {name} not yet defined in {where_file}"
            else:
                cause = f"Missing {name} export in {where_file}"
        elif no_mod:
            cause = f"Module {no_mod.group('module')} is not installed or not on sys.path"
    elif base == "AttributeError":
        m = _MODULE_ATTR.search(msg)
        o = _OBJECT_ATTR.search(msg)
        if m:
            mod, attr = m.group("module"), m.group("attr")
            if m.group("partial"):
                cause = f"Circular import: module {mod} has no attribute {attr} yet{where}"
            else:
                cause = f"Missing attribute {attr} in module {mod}{where}"
        elif o:
            cause = f"{o.group('cls')} object has no attribute {o.group('attr')}{where}"
    elif base == "KeyError":
        cause = f"Missing key {msg or '?'}{where}"
    elif base in (
        "FileNotFoundError",
        "PermissionError",
        "IsADirectoryError",
        "NotADirectoryError",
    ):
        m = _ERRNO_PATH.match(msg)
        path = _q(m.group("path")) if m else None
        if base == "FileNotFoundError":
            cause = f"Missing file {path}" if path else f"Missing file{where}: {msg}"
        elif base == "PermissionError":
            cause = f"Permission denied on {path}" if path else f"Permission denied{where}: {msg}"
        elif m and path:
            cause = f"{m.group('what')}: {path}"
    elif base in ("TimeoutError", "Timeout", "ReadTimeout", "ConnectTimeout", "TimeoutExpired"):
        cause = f"Timed out{where}" + (f": {msg}" if msg else "")
    elif base == "NameError":
        m = _NAME_UNDEFINED.search(msg)
        if m:
            hint = m.group("hint").strip(" .")
            cause = f"Undefined name {m.group('name')}{where}" + (f" ({hint})" if hint else "")
    elif base == "TypeError":
        m = _MISSING_ARG.match(msg)
        k = _UNEXPECTED_KW.match(msg)
        c = _ARG_COUNT.match(msg)
        if m:
            args = re.sub(r"'([^']*)'", r"\1", m.group("args"))
            noun = "argument" if "," not in args and " and " not in args else "arguments"
            cause = f"Call to {m.group('func')} is missing {noun} {args}{where}"
        elif k:
            cause = (
                f"Unexpected keyword argument {k.group('arg')} in call to {k.group('func')}{where}"
            )
        elif c:
            cause = f"Wrong number of arguments to {c.group('func')}{where}: {msg}"
    elif base in ("SyntaxError", "IndentationError", "TabError"):
        if frames:
            file, line, _ = frames[-1]
            cause = f"Syntax error in {_short_path(file)} line {line}" + (f": {msg}" if msg else "")
        else:
            cause = "Syntax error" + (f": {msg}" if msg else "")
    elif base == "ConnectionRefusedError" or "Connection refused" in msg:
        cause = f"Connection refused{where}: is the service running?"

    if cause is None:
        cause = f"{etype}{where}" + (f": {msg}" if msg else "")
    return _clip(cause, 500)


# --------------------------------------------------------------------------- fingerprint

_HEX = re.compile(r"0x[0-9a-fA-F]+|\b[0-9a-fA-F]{8,}\b")
_NUM = re.compile(r"\d+")
_QUOTED_PATH = re.compile(r"""(['"])(?:[A-Za-z]:)?[/\\][^'"\n]*\1""")
_PAREN_PATH = re.compile(r"\((?:[A-Za-z]:)?[/\\][^()\n]*\)")  # "... (/where/it/is.py)"


def _norm_name(s: str) -> str:
    s = _HEX.sub("<hex>", s)
    return _NUM.sub("<n>", s)


_INSTALLED = re.compile(r"/(?:site|dist)-packages/(?P<rest>.+)$")
_PYTHON_LIB = re.compile(r"/lib/(?:python|pypy)\d+(?:\.\d+)*/|/Lib/|^<")
_PACKAGE_CACHE_MAX = 1024
_package_roots: dict[str, str] = {}  # directory -> the directory holding its top package


def _is_stdlib(path: str) -> bool:
    """Python's own modules (and ``<frozen ...>``, ``<string>``): never the project's.

    Installed packages (site-packages) are not stdlib: the project itself may be
    installed, and its frames must count the same as from a source tree.
    """
    p = path.replace("\\", "/")
    return bool(_PYTHON_LIB.search(p)) and not _INSTALLED.search(p)


def _package_root(directory: str) -> str:
    """The directory that holds the top package ``directory`` belongs to (walking up
    while ``__init__.py`` exists); ``directory`` itself when it is no package."""
    hit = _package_roots.get(directory)
    if hit is not None:
        return hit
    root = directory
    while root not in ("", "/") and os.path.isfile(posixpath.join(root, "__init__.py")):
        root = posixpath.dirname(root)
    if len(_package_roots) >= _PACKAGE_CACHE_MAX:
        _package_roots.clear()
    _package_roots[directory] = root
    return root


def module_path(path: str) -> str:
    """A frame's file as its package sees it (``coffee_maker/autonomous/agent.py``),
    the same wherever the code is installed: site-packages, a source tree, a
    worktree, a venv. A file outside any package (a script) is its name alone.
    """
    p = path.replace("\\", "/")
    m = _INSTALLED.search(p)
    if m:
        return m.group("rest")
    if not p.startswith("/"):
        return posixpath.basename(p)
    directory = posixpath.dirname(p)
    root = _package_root(directory)
    return p[len(root) :].lstrip("/") if root != directory else posixpath.basename(p)


def _norm_message(message: str) -> str:
    s = _QUOTED_PATH.sub("<path>", message)
    s = _PAREN_PATH.sub("(<path>)", s)
    s = _HEX.sub("<hex>", s)
    s = _NUM.sub("<n>", s)
    return " ".join(s.split())


def fingerprint(error_type: str | None, frames: list[Frame], message: str | None = None) -> str:
    """A stable group id: sha1 of the type and the frames, line numbers dropped.

    Frames are taken as their package sees them (``module_path``) and Python's
    own are left out, so the same crash groups together wherever the code is
    installed: from the orchestrator's source tree and from a venv alike.

    Without frames the normalised message stands in (numbers, hex and quoted
    paths replaced), so ``pid 123 died`` and ``pid 456 died`` group together.
    """
    h = hashlib.sha1(usedforsecurity=False)
    h.update((error_type or "").encode("utf-8", "replace"))
    h.update(b"\0")
    own = [f for f in frames if not _is_stdlib(f[0])] or list(frames)
    if own:
        for path, _line, func in own:
            entry = f"{_norm_name(module_path(path))}|{_norm_name(func)}\n"
            h.update(entry.encode("utf-8", "replace"))
    else:
        h.update(_norm_message(message or "").encode("utf-8", "replace"))
    return h.hexdigest()[:16]


# --------------------------------------------------------------------------- crash parsing


def _is_header(line: str) -> bool:
    return line.strip().endswith(TRACEBACK_HEADER)


def _chain_start(lines: list[str], header: int) -> int:
    """Walk back over ``During handling ...`` separators to the first traceback."""
    start = header
    while True:
        j = start - 1
        while j >= 0 and not lines[j].strip():
            j -= 1
        if j < 0 or lines[j].strip().lstrip("|+ ") not in _CHAIN_SEPARATORS:
            return start
        k = j - 1
        while k >= 0 and not _is_header(lines[k]):
            k -= 1
        if k < 0:
            return start
        start = k


def _exception_block(lines: list[str], header: int) -> tuple[int, str | None, str | None]:
    """Where the last traceback ends, and its exception type and message.

    Returns ``(end_index_exclusive, type, message)``; type is None when the
    traceback was cut before its exception line.
    """
    i = header + 1
    n = len(lines)
    while i < n and (lines[i].startswith((" ", "\t")) or not lines[i].strip()):
        if not lines[i].strip():
            # A blank line inside the frame section ends it only if nothing indented follows.
            nxt = i + 1
            while nxt < n and not lines[nxt].strip():
                nxt += 1
            if nxt >= n or not lines[nxt].startswith((" ", "\t")):
                break
        i += 1
    while i < n and not lines[i].strip():
        i += 1
    if i >= n:
        return n, None, None
    m = _EXC_LINE.match(lines[i].strip())
    if not m or _LOG_START.match(lines[i]):
        return i, None, None
    etype, msg_parts = m.group("type"), [m.group("msg") or ""]
    end = i + 1
    while end < n and end - i < 50:
        more = lines[end]
        if not more.strip() or _is_header(more) or _LOG_START.match(more):
            break
        msg_parts.append(more.rstrip())
        end += 1
    message = "\n".join(msg_parts).strip() or None
    return end, etype, message


_BOXED = re.compile(r"^\s*[|+]")
_BOXED_TEXT = re.compile(r"^\s*\|\s(?=\S)(.*)$")


def _group_block(lines: list[str], header: int) -> tuple[int, int, str | None, str | None]:
    """An ``ExceptionGroup`` traceback (drawn in ``|`` boxes): its span, type and message.

    The outermost group's exception is the type; the sub-exceptions are
    appended to the message so a TaskGroup failure says what failed inside.
    """
    start = header
    i = header
    while i >= 0 and (_BOXED.match(lines[i]) or not lines[i].strip()):
        if lines[i].rstrip().endswith("Exception Group " + TRACEBACK_HEADER):
            start = i
        i -= 1
    end = header
    while end < len(lines) and _BOXED.match(lines[end]):
        end += 1
    etype: str | None = None
    message: str | None = None
    subs: list[str] = []
    for line in lines[start:end]:
        boxed = _BOXED_TEXT.match(line)
        if not boxed:
            continue
        text = boxed.group(1).strip()
        exc = _EXC_LINE.match(text)
        if not exc or text.startswith(("Traceback", "File ")):
            continue
        if etype is None:
            etype, message = exc.group("type"), (exc.group("msg") or "").strip() or None
        elif len(subs) < 5:
            subs.append(text)
    if subs:
        message = f"{message or ''}: {'; '.join(subs)}".lstrip(": ")
    return start, end, etype, message


def _fallback_error(lines: list[str]) -> tuple[str | None, str | None, int | None]:
    """Without a traceback: an exception line or ERROR record near the end."""
    seen = 0
    for idx in range(len(lines) - 1, -1, -1):
        line = lines[idx].strip()
        if not line:
            continue
        seen += 1
        if seen > 5:
            break
        rec = _ERROR_RECORD.match(line)
        if rec:
            level = rec.group("level") or rec.group("plevel")
            msg = (rec.group("msg") if rec.group("level") else rec.group("pmsg")) or ""
            inner = _EXC_LINE.match(msg.strip())
            if inner and inner.group("msg") and _EXC_LIKE.search(inner.group("type")):
                return inner.group("type"), inner.group("msg"), idx
            return level, msg.strip() or None, idx
        m = _EXC_LINE.match(line)
        if m and m.group("msg") is not None and _EXC_LIKE.search(m.group("type")):
            return m.group("type"), m.group("msg").strip() or None, idx
    return None, None, None


def _relative_to(path: str, root: str | None) -> str:
    if not root:
        return path
    r = root.rstrip("/\\")
    p = path
    if r and (p.startswith(r + "/") or p.startswith(r + "\\")):
        return p[len(r) + 1 :]
    return path


def parse_crash(text: str, project_root: str | None = None) -> CrashInfo:
    """Why did it die? The last traceback (with its chain) read into a ``CrashInfo``.

    Never raises: a traceback cut in half still yields its frames, and a log
    without a traceback yields its last exception line or ERROR record.
    """
    if not text or not text.strip():
        return CrashInfo()
    clean = sanitize(text)
    lines = clean.split("\n")
    tail = lines[-(_EXCERPT_LINES + 1) :]
    excerpt = "\n".join(_clip(ln, 500) for ln in tail).strip("\n") or None
    info = CrashInfo(log_excerpt=excerpt)
    # ohm's runner appends "[ohm-runner] agent pid N exited with code C" after
    # the agent's last words: part of the excerpt, never of the error message.
    lines = [ln for ln in lines if not ln.startswith(_RUNNER_PREFIX)]

    header = next((i for i in range(len(lines) - 1, -1, -1) if _is_header(lines[i])), None)
    frames: list[Frame] = []
    cut = False
    if header is not None:
        if _BOXED.match(lines[header]):
            start, end, etype, message = _group_block(lines, header)
            start = _chain_start(lines, start)
        else:
            start = _chain_start(lines, header)
            end, etype, message = _exception_block(lines, header)
        trace = "\n".join(lines[start:end]).strip("\n")
        if len(trace) > _MAX_TRACE:
            trace = "…\n" + trace[-_MAX_TRACE:]
        frames = frames_of("\n".join(lines[start:end]))
        info.stack_trace = trace
        info.error_type = etype
        info.error_message = _clip(message, _MAX_MESSAGE) if message else None
        cut = etype is None
    else:
        etype, message, idx = _fallback_error(lines)
        if etype is not None and idx is not None:
            info.error_type = etype
            info.error_message = _clip(message, _MAX_MESSAGE) if message else None
            # Frames just above a bare exception line (the header scrolled away).
            j = idx - 1
            while j >= 0 and lines[j].startswith((" ", "\t")):
                j -= 1
            if j < idx - 1:
                frames = frames_of("\n".join(lines[j + 1 : idx]))
                info.stack_trace = "\n".join(lines[j + 1 : idx + 1])

    if frames:
        rel_frames = [(_relative_to(f, project_root), ln, fn) for f, ln, fn in frames]
        own = [f[0] for f in rel_frames if not _is_library(f[0])]
        files = own or [f[0] for f in rel_frames]
        info.related_files = list(dict.fromkeys(files))
    else:
        rel_frames = []

    if info.error_type is None and not frames:
        if cut:
            info.root_cause = "Traceback cut short before its first frame"
        return info
    if cut:
        file, line, func = _project_frames(rel_frames)[-1]
        loc = f"{_short_path(file)}:{line}"
        info.root_cause = f"Traceback cut short; last frame {func or '?'} ({loc})"
    else:
        info.root_cause = root_cause(info.error_type, info.error_message, rel_frames)
    if info.error_type is not None or frames:
        info.fingerprint = fingerprint(info.error_type, frames, info.error_message)
    return info
