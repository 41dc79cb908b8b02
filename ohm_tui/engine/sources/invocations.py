"""Cost and tokens of session agents, from the orchestrator's ``data/claude_invocations.db``.

In era 3 the orchestrator's invoker writes one ``claude_invocations`` row per
``claude`` CLI call: ``status='running'`` and ``invoked_at`` at the start, then
``input_tokens``, ``output_tokens``, ``cost_usd``, ``duration_ms``, the final
``status`` (success, error, timeout) and ``completed_at``. Its times are naive
**UTC** ISO (``datetime.utcnow().isoformat()``), unlike its other tables.

Everything here is read-only (``mode=ro``) and bounded: SQL ``GROUP BY`` inside a
time window, so a year of calls is never loaded. Times are compared as numbers:
SQLite's ``julianday`` reads the naive text as UTC and gives epoch seconds. A call
counts at its ``completed_at`` (when its cost is known), or at ``invoked_at``
while it runs.

Tasks. The released invoker writes no task: ``session_id`` is the CLI's own
session and ``metadata`` stays empty. A call's task is, first found:

1. ``task_id`` in the ``metadata`` JSON (a newer writer may set it);
2. the ``agent_lifecycle`` run (orchestrator.db) whose ``worktree_path`` is the
   call's ``working_dir`` and that had started by then (the latest such run);
3. the run of the same agent type (``code-developer`` = ``code_developer``) that
   was running when the call was made (the latest started, if several were);

otherwise it is unknown (``None``).
"""

from __future__ import annotations

import logging
import os
import sqlite3
from collections.abc import Sequence
from contextlib import closing
from dataclasses import replace
from pathlib import Path
from typing import Literal

from ohm_tui.engine import timeutil
from ohm_tui.engine.model import CostRow, CostSummary, Issue
from ohm_tui.engine.sources import calls
from ohm_tui.engine.sources import sqlite as db
from ohm_tui.engine.sources.calls import InvocationsError
from ohm_tui.engine.sources.calls import open_ro as open_invocations

log = logging.getLogger("ohm.sources.invocations")

INVOCATIONS_DB = calls.FILE
TABLE = calls.TABLE
RUNS_LIMIT = 5000  # newest agent_lifecycle rows considered for task attribution
SLACK = 5.0  # seconds of clock slack between the two databases' writers
LOCKED_GRACE = 60.0  # a lock held this long is a problem worth an issue
DEFAULT_WINDOW = 24 * 3600.0
# Rows are inserted when a call starts, so invocation_id grows with invoked_at: the
# window's first row is found by binary search and the scan starts there. A call
# counts when it completes, so the search reaches back this much further (the
# invoker's timeout is 600 s; a clock step of less than this is harmless too).
MAX_CALL_SECONDS = 6 * 3600.0

GroupBy = Literal["type", "task", "hour"]
GROUPS: tuple[GroupBy, ...] = ("type", "task", "hour")

# A row's time: naive UTC text -> UTC epoch seconds (SQLite reads naive as UTC).
_EPOCH = "(julianday({}) - 2440587.5) * 86400.0"
_COLUMNS = (
    "agent_type",
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "duration_ms",
    "status",
    "invoked_at",
    "completed_at",
    "working_dir",
    "metadata",
)


def invocations_path(data_dir: str | os.PathLike[str]) -> Path:
    """Where the orchestrator keeps its invocations (``calls.path_in``)."""
    return calls.path_in(data_dir)


def _rows_sql(present: set[str]) -> str:
    """The table's rows reduced to what is aggregated; absent columns read as NULL."""

    def col(name: str) -> str:
        return name if name in present else "NULL"

    invoked = _EPOCH.format(col("invoked_at"))
    ts = f"COALESCE({_EPOCH.format(col('completed_at'))}, {invoked})"
    return (
        f"SELECT rowid AS rid, {col('agent_type')} AS agent_type, {ts} AS ts, "
        f"COALESCE({invoked}, {ts}) AS t_inv, "
        f"CAST(COALESCE({col('input_tokens')}, 0) AS INTEGER) AS inp, "
        f"CAST(COALESCE({col('output_tokens')}, 0) AS INTEGER) AS outp, "
        f"CAST(COALESCE({col('cost_usd')}, 0) AS REAL) AS cost, "
        f"CAST(COALESCE({col('duration_ms')}, 0) AS INTEGER) AS dur, "
        f"{col('status')} AS status, {col('working_dir')} AS working_dir, "
        f"{col('metadata')} AS metadata FROM {TABLE}"
    )


_TASK_KEY = f"""COALESCE(
  NULLIF(CASE WHEN json_valid(i.metadata)
    THEN CAST(json_extract(i.metadata, '$.task_id') AS TEXT) END, ''),
  (SELECT r.task_id FROM temp.ohm_runs r
    WHERE i.working_dir IS NOT NULL AND r.worktree = i.working_dir AND r.t0 <= i.t_inv + {SLACK}
    ORDER BY r.t0 DESC LIMIT 1),
  (SELECT r.task_id FROM temp.ohm_runs r
    WHERE r.norm_type = replace(i.agent_type, '-', '_') AND r.t0 <= i.t_inv + {SLACK}
      AND (r.t1 IS NULL OR r.t1 + {SLACK} >= i.t_inv)
    ORDER BY r.t0 DESC LIMIT 1))"""

_KEYS: dict[str, str] = {
    "type": "i.agent_type",
    "hour": "CAST(i.ts / 3600 AS INTEGER) * 3600",
    "task": _TASK_KEY,
    "all": "NULL",
}


# One agent_lifecycle run: (task id, agent type with "_", worktree, start, end), UTC epoch.
Run = tuple[str, str, str | None, float, float | None]


def _load_runs(lifecycle_db: Path | None, since: float) -> list[Run]:
    """``agent_lifecycle`` runs that may overlap the window: (task, type, worktree, start, end).

    Its times are naive *local* ISO (unlike the invocations'): converted with
    ``timeutil.to_epoch``. Unreadable or absent: no runs (tasks then come from
    ``metadata`` only), logged.
    """
    if lifecycle_db is None or not lifecycle_db.is_file():
        return []
    try:
        with closing(calls.connect_ro(lifecycle_db)) as conn:
            present = set(db.columns(conn, "agent_lifecycle"))
            if not {"task_id", "agent_type"} <= present:
                return []
            wanted = (
                "task_id",
                "agent_type",
                "worktree_path",
                "spawned_at",
                "started_at",
                "completed_at",
            )
            sql = ", ".join(c if c in present else "NULL" for c in wanted)
            order = "agent_id" if "agent_id" in present else "rowid"
            rows = conn.execute(
                f"SELECT {sql} FROM agent_lifecycle ORDER BY {order} DESC LIMIT ?", (RUNS_LIMIT,)
            ).fetchall()
    except sqlite3.Error as exc:
        log.warning("cannot read agent_lifecycle in %s for task attribution: %s", lifecycle_db, exc)
        return []
    runs: list[Run] = []
    for task, kind, worktree, spawned, started, completed in rows:
        t0 = timeutil.to_epoch(started) or timeutil.to_epoch(spawned)
        if t0 is None or task is None:
            continue
        t1 = timeutil.to_epoch(completed)
        if t1 is not None and t1 < since - SLACK:
            continue
        runs.append((str(task), str(kind).replace("-", "_"), worktree, t0, t1))
    return runs


def _fill_runs(conn: sqlite3.Connection, runs: Sequence[Run]) -> None:
    # TEMP tables live outside the read-only main database.
    conn.execute(
        "CREATE TEMP TABLE IF NOT EXISTS ohm_runs "
        "(task_id TEXT, norm_type TEXT, worktree TEXT, t0 REAL, t1 REAL)"
    )
    conn.execute("DELETE FROM temp.ohm_runs")
    conn.execute("CREATE INDEX IF NOT EXISTS temp.ohm_runs_type ON ohm_runs (norm_type, t0)")
    conn.execute("CREATE INDEX IF NOT EXISTS temp.ohm_runs_tree ON ohm_runs (worktree, t0)")
    conn.executemany("INSERT INTO temp.ohm_runs VALUES (?, ?, ?, ?, ?)", runs)


def _query(
    conn: sqlite3.Connection, path: Path, by: str, since: float, until: float
) -> list[CostRow]:
    try:
        present = calls.table_columns(conn)
        if "invoked_at" not in present and "completed_at" not in present:
            raise InvocationsError(path, f"{TABLE} has no invoked_at/completed_at column", "other")
        order = "k" if by == "hour" else "cost DESC, k"
        sql = (
            f"SELECT {_KEYS[by]} AS k, COUNT(*), "
            "SUM(CASE WHEN i.status IN ('error', 'timeout') THEN 1 ELSE 0 END), "
            "TOTAL(i.inp), TOTAL(i.outp), TOTAL(i.cost) AS cost, TOTAL(i.dur) "
            f"FROM ({_rows_sql(present)}) AS i WHERE i.ts >= ? AND i.ts < ? "
            f"GROUP BY k ORDER BY {order}"
        )
        sql = sql.replace("WHERE i.ts", "WHERE i.rid >= ? AND i.ts", 1)
        first = _first_rowid(conn, since - MAX_CALL_SECONDS) if "invoked_at" in present else 0
        rows = conn.execute(sql, (first, since, until)).fetchall()
    except sqlite3.Error as exc:
        raise calls.classify(path, exc) from None
    return [
        CostRow(
            key=(float(k) if by == "hour" else str(k)) if k is not None else None,
            calls=int(calls),
            errors=int(errors or 0),
            input_tokens=int(inp),
            output_tokens=int(outp),
            cost_usd=round(float(cost), 6),
            duration_ms=int(dur),
        )
        for k, calls, errors, inp, outp, cost, dur in rows
    ]


def _first_rowid(conn: sqlite3.Connection, since: float) -> int:
    """The smallest rowid whose ``invoked_at`` is at or after ``since``, in O(log n) reads.

    Bounds the scan to the window instead of the table's whole history. A row
    whose time cannot be read counts as recent, so the search only ever widens.
    """
    lo_hi = conn.execute(f"SELECT MIN(rowid), MAX(rowid) FROM {TABLE}").fetchone()
    if lo_hi is None or lo_hi[0] is None:
        return 0
    lo, hi = int(lo_hi[0]), int(lo_hi[1])
    probe = (
        f"SELECT rowid, {_EPOCH.format('invoked_at')} FROM {TABLE} "
        "WHERE rowid >= ? ORDER BY rowid LIMIT 1"
    )
    while lo < hi:
        mid = (lo + hi) // 2
        row = conn.execute(probe, (mid,)).fetchone()
        if row is None or row[1] is None or float(row[1]) >= since:
            hi = mid
        else:
            lo = int(row[0]) + 1
    return lo


def read_invocations(
    db_path: Path,
    since_epoch: float,
    *,
    until_epoch: float | None = None,
    by: GroupBy = "type",
    lifecycle_db: Path | None = None,
) -> list[CostRow]:
    """Calls, tokens and spend between two UTC epoch times, grouped ``by`` type, task or hour.

    ``lifecycle_db`` (orchestrator.db) lets calls be attributed to tasks. Rows come
    biggest spend first (by hour: oldest hour first). Raises ``InvocationsError``.
    """
    until = timeutil.now() if until_epoch is None else until_epoch
    with calls.opened(db_path) as conn:
        if by == "task":
            try:
                _fill_runs(conn, _load_runs(lifecycle_db, since_epoch))
            except sqlite3.Error as exc:
                raise calls.classify(db_path, exc) from None
        return _query(conn, db_path, by, since_epoch, until)


def total(rows: Sequence[CostRow], key: str | None = None) -> CostRow:
    """The sum of some groups (their key dropped)."""
    out = CostRow(key=key)
    for r in rows:
        out.calls += r.calls
        out.errors += r.errors
        out.input_tokens += r.input_tokens
        out.output_tokens += r.output_tokens
        out.cost_usd += r.cost_usd
        out.duration_ms += r.duration_ms
    out.cost_usd = round(out.cost_usd, 6)
    return out


def cost_summary(
    db_path: Path,
    *,
    now: float,
    window: float = DEFAULT_WINDOW,
    lifecycle_db: Path | None = None,
    budget_per_hour: float | None = None,
) -> CostSummary:
    """The figures a face shows: the last hour, and the window by type and by task."""
    since = now - window
    with calls.opened(db_path) as conn:
        by_type = _query(conn, db_path, "type", since, now)
        hour = _query(conn, db_path, "all", now - 3600.0, now)
        try:
            _fill_runs(conn, _load_runs(lifecycle_db, since))
        except sqlite3.Error as exc:
            raise calls.classify(db_path, exc) from None
        by_task = _query(conn, db_path, "task", since, now)
    return CostSummary(
        database=str(db_path),
        since=since,
        until=now,
        total=total(by_type),
        last_hour=total(hour),
        by_type=by_type,
        by_task=by_task,
        budget_per_hour=budget_per_hour,
    )


def _stat_sig(path: Path) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


class CostTracker:
    """The monitor's cost figures, queried again only when the database changed or
    the window moved on by ``refresh`` seconds (a check runs far more often than
    calls complete). A read that fails keeps the last good figures, with the problem."""

    def __init__(
        self,
        db_path: Path,
        *,
        lifecycle_db: Path | None = None,
        budget_per_hour: float | None = None,
        window: float = DEFAULT_WINDOW,
        refresh: float = 30.0,
    ) -> None:
        self.db_path = db_path
        self.lifecycle_db = lifecycle_db
        self.budget_per_hour = budget_per_hour
        self.window = window
        self.refresh = refresh
        self.last: CostSummary | None = None
        self.problem_kind: str | None = None
        self.problem_since: float | None = None
        self._sig: object = None

    def summary(self, now: float) -> CostSummary | None:
        """``None`` while there is no invocations database (eras 1 and 2)."""
        sig = (
            _stat_sig(self.db_path),
            _stat_sig(self.db_path.with_name(self.db_path.name + "-wal")),
            int(now // self.refresh),
        )
        if sig == self._sig:
            return self.last
        self._sig = sig
        try:
            self.last = cost_summary(
                self.db_path,
                now=now,
                window=self.window,
                lifecycle_db=self.lifecycle_db,
                budget_per_hour=self.budget_per_hour,
            )
            self.problem_kind = self.problem_since = None
        except (InvocationsError, sqlite3.Error, OSError, ValueError) as exc:
            if not isinstance(exc, InvocationsError):  # bad data must not stop a check
                exc = InvocationsError(self.db_path, f"cannot be read: {exc}", "other")
            self._sig = None  # try again next time
            if exc.kind == "missing":
                self.last = None
                self.problem_kind = self.problem_since = None
                return None
            if self.problem_kind != exc.kind:
                self.problem_since = now
            self.problem_kind = exc.kind
            base = self.last or CostSummary(
                database=str(self.db_path),
                since=now - self.window,
                until=now,
                total=CostRow(key=None),
                last_hour=CostRow(key=None),
                budget_per_hour=self.budget_per_hour,
            )
            self.last = replace(base, problem=exc.problem)
        return self.last

    def issues(self, now: float) -> list[Issue]:
        """The budget issue, and an unreadable database (a lock only once it lasts)."""
        s = self.last
        if s is None:
            return []
        out: list[Issue] = []
        if s.problem is not None and self.problem_kind is not None:
            lasted = now - (self.problem_since or now)
            if self.problem_kind != "locked" or lasted >= LOCKED_GRACE:
                out.append(
                    Issue(
                        type="state_file_error",
                        severity="degraded",
                        error=f"{s.database}: {s.problem}; cost and tokens are not up to date",
                        details={"file": s.database, "problem": s.problem},
                    )
                )
        issue = budget_issue(s)
        if issue is not None:
            out.append(issue)
        return out


def budget_issue(s: CostSummary) -> Issue | None:
    """Spend in the last hour above ``cost_budget_per_hour``: degraded (twice it: a bug)."""
    budget = s.budget_per_hour
    if budget is None or not s.over_budget:
        return None
    spent = s.last_hour.cost_usd
    ratio = spent / budget
    error = (
        f"session agents spent ${spent:.2f} in the last hour, over the budget of "
        f"${budget:.2f}/h ({ratio:.1f}x)"
    )
    return Issue(
        type="cost_over_budget",
        severity="degraded",
        error=error,
        details={
            "cost_last_hour_usd": spent,
            "budget_per_hour": budget,
            "ratio": round(ratio, 3),
            "calls_last_hour": s.last_hour.calls,
            "tokens_last_hour": s.last_hour.tokens,
            "database": s.database,
        },
    )


__all__ = [
    "GROUPS",
    "INVOCATIONS_DB",
    "CostTracker",
    "GroupBy",
    "InvocationsError",
    "budget_issue",
    "cost_summary",
    "format_usd",
    "invocations_path",
    "open_invocations",
    "read_invocations",
    "total",
]


def format_usd(value: float | None) -> str:
    """``$3.20``; cents of a cent for tiny sums (``$0.0042``), as a bill would not."""
    if value is None:
        return "-"
    if 0 < abs(value) < 0.01:
        return f"${value:.4f}"
    return f"${value:,.2f}"
