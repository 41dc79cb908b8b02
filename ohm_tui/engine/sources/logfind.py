"""Finding an agent's log when its state entry names none.

The real orchestrator's ``agent_state.json`` has no log path; its agents write
``logs/<agent_type>-<task>-<pid>.log``. ``agent_log_pattern`` says where to look.
With a thousand agents, one glob per agent over a thousand-file folder took
seconds, so a folder is listed once per check and indexed by the PIDs in names.
"""

from __future__ import annotations

import contextlib
import fnmatch
import itertools
import os
import re
import stat
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from ohm_tui.engine.config import Config
from ohm_tui.engine.model import AgentRecord, slug


class LogFinder:
    """Per-monitor cache of where each agent run's log is."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self._found: dict[str, str | None] = {}
        self._misses: dict[str, float] = {}
        self._listings: dict[str, tuple[tuple[int, int], _LogListing]] = {}
        self._pass: dict[str, _LogListing | None] | None = None
        self._wanted: set[str] | None = None  # PIDs this pass looks up

    @contextlib.contextmanager
    def one_pass(self, records: Iterable[AgentRecord] = ()) -> Iterator[None]:
        """Within one check each folder is looked at once, settled or not. ``records``:
        the runs this pass looks up. With a PID in the pattern, only names holding one
        of their PIDs are kept: the folder may hold a log of every run ever made."""
        self._pass = {}
        self._wanted = {str(r.pid) for r in records if r.key not in self._found}
        try:
            yield
        finally:
            self._pass = None
            self._wanted = None

    def _listing(self, directory: Path, wanted: set[str] | None = None) -> _LogListing | None:
        """One listing of a log directory serves every agent's ``agent_log_pattern``
        lookup; listed again only when the directory changed (a folder changed in the
        last second is not cached: a log may still be appearing). ``wanted``: keep
        only names holding one of these runs of digits, for this pass alone."""
        key = str(directory)
        this_pass = self._pass
        if this_pass is not None and key in this_pass:
            return this_pass[key]  # one look per directory per check, settled or not
        listing: _LogListing | None = None
        if wanted is not None:
            try:
                with os.scandir(directory) as entries:
                    listing = _LogListing((e.name for e in entries), keep=wanted)
            except OSError:
                listing = None
            if this_pass is not None:
                this_pass[key] = listing
            return listing
        try:
            st = os.stat(directory)
            sig = (st.st_ino, st.st_mtime_ns)
            cached = self._listings.get(key)
            if cached is not None and cached[0] == sig:
                listing = cached[1]
            else:
                listing = _LogListing(os.listdir(directory))
                if time.time() - st.st_mtime > 1.0:
                    self._listings[key] = (sig, listing)
        except OSError:
            listing = None
        if this_pass is not None:
            this_pass[key] = listing
        return listing

    def forget_unlisted(self, listed: set[str]) -> None:
        """Keep what was found for the runs listed now only (a daemon must not grow)."""
        self._found = {k: v for k, v in self._found.items() if k in listed}
        self._misses = {k: v for k, v in self._misses.items() if k in listed}

    def _newest_of_run(self, rec: AgentRecord, paths: list[Path]) -> str | None:
        """The greatest path (as ``sorted(glob)[-1]``) that can be this run's log: not
        one last written before the run started. PIDs wrap (32,768 on many hosts), and
        a folder of every run's logs then holds an earlier process's log with this PID,
        maybe with its traceback: never taken for this run's."""
        tolerance = self.config.pid_start_tolerance
        oldest = None if rec.started_at is None else rec.started_at - tolerance
        for path in sorted(paths, reverse=True):
            try:
                st = os.stat(path)
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode) and (oldest is None or st.st_mtime >= oldest):
                return str(path)
        return None

    def find(self, rec: AgentRecord) -> str | None:
        """Locate the log of an entry that names none, via ``agent_log_pattern`` (cached)."""
        if rec.key in self._found:
            return self._found[rec.key]
        missed = self._misses.get(rec.key)
        if missed is not None and time.monotonic() - missed < 10.0:
            return None  # looked a moment ago: globbing every entry every check is costly
        found: str | None = None
        pattern = self.config.agent_log_pattern
        if pattern:
            try:
                text = pattern.format(
                    pid=rec.pid, agent_type=slug(rec.agent_type), task_id=slug(rec.task_id, "none")
                )
            except (KeyError, IndexError, ValueError):
                text = ""
            if text:
                base = self.config.path(text)
                if any(ch in text for ch in "*?["):
                    # One listing and an index by PID, not a glob per agent: 1,000
                    # globs over a 1,000-file folder took seconds.
                    hint = _pid_hint(pattern, rec.pid)
                    wanted = self._wanted
                    keep = wanted if hint is not None and wanted and hint in wanted else None
                    listing = self._listing(base.parent, keep)
                    hits = listing.matches(base.name, hint) if listing else []
                    found = self._newest_of_run(rec, [base.parent / h for h in hits])
                else:
                    found = self._newest_of_run(rec, [base])
        if found is not None:
            self._found[rec.key] = found
            self._misses.pop(rec.key, None)
        else:
            self._misses[rec.key] = time.monotonic()
        return found


_DIGIT_RUN = re.compile(r"\d+")


class _LogListing:
    """The names in one log directory, indexed by the runs of digits in them."""

    __slots__ = ("by_digits", "names")

    def __init__(self, names: Iterable[str], keep: set[str] | None = None) -> None:
        self.names: list[str] = []
        self.by_digits: dict[str, list[str]] = {}
        for name in names:
            runs = _DIGIT_RUN.findall(name)
            if keep is not None and keep.isdisjoint(runs):
                continue  # no PID looked up now: memory stays with the runs listed
            self.names.append(name)
            for run in runs:
                self.by_digits.setdefault(run, []).append(name)

    def matches(self, pattern: str, digits: str | None) -> list[str]:
        """The names matching the glob ``pattern``.

        ``digits``: a run of digits every matching name holds (see ``_pid_hint``),
        so only names holding it are tried.
        """
        pool = self.names if digits is None else self.by_digits.get(digits, [])
        return [n for n in pool if _glob_match(n, pattern)]


def _glob_match(name: str, pattern: str) -> bool:
    """``fnmatch.fnmatchcase`` without compiling a regex per pattern when ``*`` is the
    only wildcard (each agent's pattern differs, and compiling dominated)."""
    if "?" in pattern or "[" in pattern:
        return fnmatch.fnmatchcase(name, pattern)
    parts = pattern.split("*")
    if len(parts) == 1:
        return name == pattern
    first, last = parts[0], parts[-1]
    end = len(name) - len(last)
    if end < len(first) or not name.startswith(first) or not name.endswith(last):
        return False
    pos = len(first)
    for middle in parts[1:-1]:  # leftmost fit of each piece in turn is exact for '*'
        at = name.find(middle, pos, end)
        if at < 0:
            return False
        pos = at + len(middle)
    return True


def _pid_hint(template: str, pid: int) -> str | None:
    """``str(pid)`` when every ``{pid}`` in the template's file name sits between
    characters that are neither digits, wildcards nor other placeholders: then a
    matching name holds exactly that run of digits. ``None``: no such promise."""
    name = template.rsplit("/", 1)[-1]
    if "{pid}" not in name or "{{" in name or "}}" in name:
        return None
    parts = name.split("{pid}")
    for before, after in itertools.pairwise(parts):
        if before and (before[-1].isdigit() or before[-1] in "*?[]}"):
            return None
        if after and (after[0].isdigit() or after[0] in "*?[]{"):
            return None
    return str(pid)
