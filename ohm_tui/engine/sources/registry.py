"""The sources a monitor reads: detected from what is on disk, or pinned by the
``sources = [...]`` config key; read each check; merged across sources.

Detection is sticky: a source seen once stays, so a state file that vanishes
is reported as missing, not silently forgotten. A state directory with none of
them is an error that names everything that was looked for.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from ohm_tui.engine.config import Config
from ohm_tui.engine.model import AgentRecord, ExitInfo, Issue, Observation
from ohm_tui.engine.sources import sessions, statefile
from ohm_tui.engine.sources.base import Source, SourceKind, SourceRead, SourceWriteError
from ohm_tui.engine.sources.jsonfile import AgentStateSource
from ohm_tui.engine.sources.lifecycle import LifecycleSource
from ohm_tui.engine.sources.sessions import InvocationsSource
from ohm_tui.engine.system import procs

CLASSES: dict[SourceKind, type[Source]] = {
    SourceKind.AGENT_STATE: AgentStateSource,
    SourceKind.AGENT_LIFECYCLE: LifecycleSource,
    SourceKind.CLAUDE_INVOCATIONS: InvocationsSource,
}


PROBE_EVERY = 2.0  # seconds between looks for a table in a file that keeps changing


def looked_for(config: Config) -> str:
    """Everything detection looks for, in words (for the "nothing found" error)."""
    return (
        f"{config.agent_state_file} or {config.work_loop_state_file} (era 1), "
        f"an agent_lifecycle table in {config.database} (era 2), "
        "claude_invocations.db (era 3)"
    )


def any_present(config: Config) -> bool:
    """Does the state directory hold any source (or are they pinned by config)?
    Read-only: nothing is created, so a wrong directory can be refused untouched."""
    if config.sources is not None:
        return True
    return any(cls.detect(config) for cls in CLASSES.values())


def _file_sig(path: Path) -> tuple[int, int, int, int]:
    """Size and mtime of a database and its WAL: a table created in WAL mode
    changes only the ``-wal`` file until a checkpoint."""
    out = []
    for p in (path, Path(f"{path}-wal")):
        try:
            st = os.stat(p)
            out += [st.st_size, st.st_mtime_ns]
        except OSError:
            out += [-1, -1]
    return (out[0], out[1], out[2], out[3])


class SourceSet:
    """The detected sources, their last good records, and where write-backs go."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.pinned = config.sources is not None
        self.active: dict[SourceKind, Source] = {}
        self.fallback = False  # nothing found: the JSON source reports what is missing
        self._last: dict[SourceKind, list[AgentRecord]] = {}
        self._ok: dict[SourceKind, bool] = {}
        self._absent_sig: dict[SourceKind, tuple[int, int, int, int]] = {}
        self.exits: dict[str, ExitInfo] = {}
        self.completed: list[AgentRecord] = []  # closed agent_lifecycle rows (fast-exit counting)
        self._finished_sessions: list[AgentRecord] = []  # ended sessions: their calls are theirs
        self._probed: dict[SourceKind, float] = {}
        if config.sources is not None:
            for name in config.sources:
                kind = SourceKind(name)
                self.active[kind] = CLASSES[kind](config)

    # ------------------------------------------------------------------ detection
    def _probe_path(self, kind: SourceKind) -> Path | None:
        if kind is SourceKind.AGENT_LIFECYCLE:
            return self.config.database_path
        if kind is SourceKind.CLAUDE_INVOCATIONS:
            return self.config.path("claude_invocations.db")
        return None

    def detect(self) -> None:
        """Add sources that appeared since the last check (pinned sets never change)."""
        if self.pinned:
            return
        for kind, cls in CLASSES.items():
            if kind in self.active:
                continue
            probe = self._probe_path(kind)
            sig = _file_sig(probe) if probe is not None else None
            if sig is not None and self._absent_sig.get(kind) == sig:
                continue  # the file did not change since it lacked the table
            now = time.monotonic()
            own = probe == self.config.database_path  # ohm's history is written there too
            if own and now - self._probed.get(kind, -PROBE_EVERY) < PROBE_EVERY:
                continue  # it changes every check: look for the table now and then
            self._probed[kind] = now
            if cls.detect(self.config):
                self.active[kind] = cls(self.config)
                self._absent_sig.pop(kind, None)
            elif sig is not None:
                self._absent_sig[kind] = sig
        others = [k for k in self.active if k is not SourceKind.AGENT_STATE]
        self.fallback = not others and SourceKind.AGENT_STATE not in self.active
        if self.fallback:
            self.active[SourceKind.AGENT_STATE] = AgentStateSource(self.config)
        elif others and self._fallback_json():
            del self.active[SourceKind.AGENT_STATE]  # a newer orchestrator, not an error

    def _fallback_json(self) -> bool:
        src = self.active.get(SourceKind.AGENT_STATE)
        return (
            isinstance(src, AgentStateSource)
            and src.view is None
            and not AgentStateSource.detect(self.config)
        )

    # ------------------------------------------------------------------ reading
    @property
    def json(self) -> AgentStateSource | None:
        src = self.active.get(SourceKind.AGENT_STATE)
        return src if isinstance(src, AgentStateSource) else None

    @property
    def lifecycle(self) -> LifecycleSource | None:
        src = self.active.get(SourceKind.AGENT_LIFECYCLE)
        return src if isinstance(src, LifecycleSource) else None

    @property
    def invocations(self) -> InvocationsSource | None:
        src = self.active.get(SourceKind.CLAUDE_INVOCATIONS)
        return src if isinstance(src, InvocationsSource) else None

    @property
    def json_ok(self) -> bool:
        return self._ok.get(SourceKind.AGENT_STATE, False)

    def ok_for(self, rec: AgentRecord) -> bool:
        """Was the source that lists ``rec`` readable in the last check? (Fix only then.)"""
        for kind, src in self.active.items():
            if src.owns(rec):
                return self._ok.get(kind, False)
        return True

    def gather(self, now: float, issues: list[Issue]) -> list[AgentRecord]:
        """Records of every source (last good ones for a source that failed now),
        one per run across sources; problems become issues."""
        self.detect()
        self.exits = {}
        lists: list[list[AgentRecord]] = []
        for kind, src in self.active.items():
            got = src.read(now)
            self._ok[kind] = got.error is None
            if got.error is None:
                self._last[kind] = got.agents
                self.exits.update(got.exits)
                if kind is SourceKind.AGENT_LIFECYCLE:
                    self.completed = [r for r in got.completed if r.source == "lifecycle"]
                    self._finished_sessions = [r for r in got.completed if r.source == "session"]
            issues.extend(self._issues(src, got))
            lists.append(self._last.get(kind, []))
        lc, calls = self.lifecycle, self.invocations
        if lc is not None:
            lc.invocations_present = calls is not None
        records = _merge(lists, self.config.pid_start_tolerance)
        if calls is not None:
            sessions.annotate(records, calls.calls, self.config, now, self._finished_sessions)
        return records

    def _issues(self, src: Source, got: SourceRead) -> list[Issue]:
        where = src.path if isinstance(src, (AgentStateSource, LifecycleSource)) else None
        noun = "file" if isinstance(src, AgentStateSource) else "source"
        out = [
            Issue(
                type="state_file_error",
                severity="degraded",
                error=f"{where}: {w}" if where is not None else w,
                details={"file": str(where or ""), "problem": w},
            )
            for w in got.warnings
        ]
        if got.error is not None:
            problem = got.error
            if isinstance(src, AgentStateSource):
                if self.fallback:
                    problem += (
                        f"; no orchestrator state found in {self.config.data_dir} "
                        f"(looked for {looked_for(self.config)})"
                    )
                text = f"{src.path}: {problem}"
            else:
                text = problem
            kept = " (showing the last good view)" if self._last.get(src.kind) else ""
            out.append(
                Issue(
                    type="state_file_error",
                    severity="degraded",
                    error=f"{text}{kept}; no fixes from this {noun} until it is readable",
                    details={"file": str(where or ""), "problem": problem},
                )
            )
        return out

    @property
    def heartbeat(self) -> statefile.LoopState | None:
        lc = self.lifecycle
        return lc.last_heartbeat if lc is not None else None

    def describe(self) -> list[str]:
        """What the last check read, in words (``ohm check`` prints it)."""
        out = []
        for kind, src in self.active.items():
            if kind is SourceKind.AGENT_STATE and self.fallback:
                continue
            out.append(src.describe())
            if isinstance(src, LifecycleSource) and src.describe_heartbeat():
                out.append(str(src.describe_heartbeat()))
        if self.config.work_loop_state_path.exists():
            out.append(f"{self.config.work_loop_state_path.name} (era 1 heartbeat)")
        return out

    # ------------------------------------------------------------------ writing
    def owner(self, rec: AgentRecord) -> Source | None:
        for src in self.active.values():
            if src.owns(rec):
                return src
        return None

    def write_respawn(self, old: AgentRecord, new: AgentRecord, *, restarted: bool = False) -> None:
        """Record a respawn in the source that listed ``old``. Raises ``SourceWriteError``."""
        src = self.owner(old)
        if src is None:
            raise SourceWriteError(f"no source lists {old.key}")
        src.write_respawn(old, new, restarted=restarted)

    def move_stale(self, stale: list[Observation], now: float) -> list[int]:
        """Mark the runs of ``stale`` as ended in their sources, never one that is
        alive after all. Returns the PIDs moved. Raises ``SourceWriteError``."""
        groups: dict[SourceKind, list[tuple[AgentRecord, str, int | None]]] = {}
        for o in stale:
            r = o.record
            src = self.owner(r)
            if src is None or (r.source != "session" and _alive(r, self.config)):
                continue
            status = "completed" if o.exit_code in (0, None) and not o.is_crash else "failed"
            groups.setdefault(src.kind, []).append((r, status, o.exit_code))
        moved: list[int] = []
        for kind, items in groups.items():
            moved += self.active[kind].move_stale(items, now)
        return moved

    def close(self) -> None:
        for src in self.active.values():
            src.close()


def _alive(rec: AgentRecord, config: Config) -> bool:
    raw = procs.read_proc(rec.pid)
    return (
        raw is not None
        and raw.state != "Z"
        and procs.identity_matches(
            rec.pid,
            started_at=rec.started_at,
            create_time=rec.create_time,
            tolerance=config.pid_start_tolerance,
            command=rec.command or None,
            raw=raw,
        )
    )


def _merge(lists: list[list[AgentRecord]], tolerance: float) -> list[AgentRecord]:
    """One record per run across sources: the same PID started within ``tolerance``
    seconds is one run (the first source listing it wins). A session is its own row:
    thread ids are recycled at once."""
    if len(lists) == 1:
        return list(lists[0])
    out: list[AgentRecord] = []
    keys: set[str] = set()
    starts: dict[int, list[float | None]] = {}
    for recs in lists:
        for rec in recs:
            if rec.key in keys:
                continue
            if rec.source == "session":  # a thread id is no process: its row is the run
                keys.add(rec.key)
                out.append(rec)
                continue
            known = starts.get(rec.pid)
            if known is not None and any(
                s is None or rec.started_at is None or abs(s - rec.started_at) <= tolerance
                for s in known
            ):
                continue
            keys.add(rec.key)
            starts.setdefault(rec.pid, []).append(rec.started_at)
            out.append(rec)
    return out
