"""The respawn ledger: attempts per task, agents ohm spawned, runs seen alive."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from ohm_tui.engine.model import RespawnState
from ohm_tui.engine.store.database import Repository
from ohm_tui.engine.store.rows import _AGENT_COLS, _json_list, _opt_float, agent_dict

_STATE_COLS = (
    "attempts, last_attempt_ts, next_allowed_ts, given_up, given_up_ts, "
    "last_start_ts, recent_fast_exits"
)
_IN_CHUNK = 500  # task keys per query (well under SQLite's variable limit)


def _state(task_key: str, row: Sequence[Any]) -> RespawnState:
    return RespawnState(
        task_key=task_key,
        attempts=int(row[0] or 0),
        last_attempt_ts=_opt_float(row[1]),
        next_allowed_ts=_opt_float(row[2]),
        given_up=bool(row[3]),
        given_up_ts=_opt_float(row[4]),
        last_start_ts=_opt_float(row[5]),
        recent_fast_exits=[float(x) for x in _json_list(row[6]) if isinstance(x, int | float)],
    )


class RespawnRepository(Repository):
    """A repository over the one ``Database`` it is given."""

    def get_respawn_state(self, task_key: str) -> RespawnState:
        row = self._one(
            f"SELECT {_STATE_COLS} FROM ohm_respawn_state WHERE task_key=?", (task_key,)
        )
        return RespawnState(task_key) if row is None else _state(task_key, row)

    def respawn_states(self, task_keys: Iterable[str]) -> dict[str, RespawnState]:
        """The ledger rows of many tasks in a few queries (a snapshot of 5,000 agents
        read one row per agent every refresh: most of the idle console's cost). A task
        without a row is absent from the result (its state is the default)."""
        keys = sorted(set(task_keys))
        out: dict[str, RespawnState] = {}
        for i in range(0, len(keys), _IN_CHUNK):
            chunk = keys[i : i + _IN_CHUNK]
            rows = self._rows(
                f"SELECT task_key, {_STATE_COLS} FROM ohm_respawn_state "
                f"WHERE task_key IN ({','.join('?' * len(chunk))})",
                tuple(chunk),
                action="read respawn states",
            )
            for r in rows:
                out[str(r[0])] = _state(str(r[0]), r[1:])
        return out

    def given_up_states(self, since: float) -> list[RespawnState]:
        """Tasks ohm gave up on at or after ``since``, oldest first: they stay an issue
        (and a row) after their entries left the state file, until run again."""
        rows = self._rows(
            "SELECT task_key, attempts, last_attempt_ts, next_allowed_ts, given_up_ts, "
            "last_start_ts, recent_fast_exits FROM ohm_respawn_state "
            "WHERE given_up = 1 AND given_up_ts >= ? ORDER BY given_up_ts, task_key",
            (float(since),),
            action="list given-up tasks",
        )
        return [
            RespawnState(
                task_key=str(r[0]),
                attempts=int(r[1] or 0),
                last_attempt_ts=_opt_float(r[2]),
                next_allowed_ts=_opt_float(r[3]),
                given_up=True,
                given_up_ts=_opt_float(r[4]),
                last_start_ts=_opt_float(r[5]),
                recent_fast_exits=[
                    float(x) for x in _json_list(r[6]) if isinstance(x, int | float)
                ],
            )
            for r in rows
        ]

    def save_respawn_state(self, state: RespawnState) -> None:
        values = (
            state.task_key,
            state.attempts,
            state.last_attempt_ts,
            state.next_allowed_ts,
            int(state.given_up),
            state.given_up_ts,
            state.last_start_ts,
            json.dumps(list(state.recent_fast_exits)),
        )
        self._write(
            lambda c: c.execute(
                "INSERT OR REPLACE INTO ohm_respawn_state (task_key, attempts, last_attempt_ts, "
                "next_allowed_ts, given_up, given_up_ts, last_start_ts, recent_fast_exits) "
                "VALUES (?,?,?,?,?,?,?,?)",
                values,
            ),
            "save respawn state",
        )

    def add_respawn(
        self,
        *,
        task_key: str,
        crash_id: int | None,
        old_key: str | None,
        new_key: str | None,
        ok: bool,
        message: str,
        ts: float,
    ) -> None:
        self._write(
            lambda c: c.execute(
                "INSERT INTO ohm_respawns (ts, task_key, crash_id, old_key, new_key, ok, message) "
                "VALUES (?,?,?,?,?,?,?)",
                (ts, task_key, crash_id, old_key, new_key, int(ok), message),
            ),
            "record a respawn",
        )

    def respawn_success_rate(self, since: float | None = None) -> float | None:
        """Share of respawn attempts that worked; ``None`` when there were none."""
        row = self._one(
            "SELECT COUNT(*), COALESCE(SUM(ok), 0) FROM ohm_respawns WHERE ts >= ?",
            (since if since is not None else -1.0,),
        )
        if not row or not row[0]:
            return None
        return float(row[1]) / float(row[0])

    def recovery_rate(self, *, since: float, stable_after: float, now: float) -> float | None:
        """Share of respawns after which the agent recovered; ``None`` when none is decided.

        A respawn is a recovery when the new run stayed alive ``stable_after``
        seconds, or ended cleanly (exit 0) before that. It failed when it could
        not start, or the new run crashed (or exited non-zero) within that time.
        A run still younger than ``stable_after`` is not decided yet. So the
        figure cannot read 100 % while agents crash again after every respawn.
        """
        rows = self._rows(
            "SELECT r.ok, a.started_ts, a.ended_ts, a.exit_code, "
            "(SELECT MIN(c.crashed_ts) FROM agent_crashes c WHERE c.agent_key = r.new_key) "
            "FROM ohm_respawns r LEFT JOIN ohm_agents a ON a.agent_key = r.new_key "
            "WHERE r.ts >= ?",
            (float(since),),
            action="compute the recovery rate",
        )
        good = decided = 0
        for ok, started, ended, exit_code, crashed in rows:
            if not ok:
                decided += 1
                continue
            if started is None:
                continue  # its run is not recorded (yet): nothing to judge
            start = float(started)
            if crashed is not None and float(crashed) - start < stable_after:
                decided += 1
            elif ended is not None and float(ended) - start < stable_after:
                decided += 1
                good += int(exit_code == 0)
            elif (float(ended) if ended is not None else now) - start >= stable_after:
                decided += 1
                good += 1
        return good / decided if decided else None

    def failed_respawns(self) -> list[dict[str, Any]]:
        """Tasks whose latest respawn could not start: ``task_key, ts, crash_id, old_key, message``.

        The newest row per task decides: a later respawn that worked clears it.
        """
        rows = self._rows(
            "SELECT r.task_key, r.ts, r.crash_id, r.old_key, r.message FROM ohm_respawns r "
            "WHERE r.ok = 0 AND r.id = (SELECT MAX(id) FROM ohm_respawns x "
            "WHERE x.task_key = r.task_key) ORDER BY r.ts",
            action="list failed respawns",
        )
        return [
            {
                "task_key": r[0],
                "ts": float(r[1]),
                "crash_id": r[2],
                "old_key": r[3],
                "message": r[4],
            }
            for r in rows
        ]

    def operator_stop(self, agent_key: str, since: float) -> str | None:
        """The latest operator stop/restart of this run since ``since`` (an ``EventKind``
        value), ``stop_failed`` when that stop did not happen, else ``None``."""
        row = self._one(
            "SELECT kind FROM ohm_events WHERE ts >= ? AND agent_key = ? "
            "AND kind IN ('stopped_by_operator', 'restarted_by_operator', 'stop_failed') "
            "ORDER BY event_id DESC LIMIT 1",
            (float(since), agent_key),
        )
        return str(row[0]) if row else None

    def add_ohm_agent(
        self,
        *,
        agent_key: str,
        pid: int,
        create_time: float | None,
        agent_type: str,
        task_id: str | None,
        argv: Sequence[str],
        command_text: str | None,
        cwd: str | None,
        log_file: str | None,
        started_ts: float,
        source_file: str | None = None,
        respawn_of: str | None = None,
    ) -> None:
        values = (
            agent_key,
            pid,
            create_time,
            agent_type,
            task_id,
            json.dumps(list(argv)),
            command_text,
            cwd,
            log_file,
            source_file,
            respawn_of,
            started_ts,
        )
        self._write(
            lambda c: c.execute(
                "INSERT OR REPLACE INTO ohm_agents (agent_key, pid, create_time, agent_type, "
                "task_id, argv, command_text, cwd, log_file, source_file, respawn_of, started_ts, "
                "ended_ts, exit_code, status) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,NULL,NULL,'running')",
                values,
            ),
            "record a spawned agent",
        )

    def ohm_agent(self, agent_key: str) -> dict[str, Any] | None:
        row = self._one(
            f"SELECT {', '.join(_AGENT_COLS)} FROM ohm_agents WHERE agent_key=?", (agent_key,)
        )
        return agent_dict(row) if row else None

    def list_ohm_agents(self, *, running_only: bool = True) -> list[dict[str, Any]]:
        where = " WHERE status='running'" if running_only else ""
        rows = self._rows(
            f"SELECT {', '.join(_AGENT_COLS)} FROM ohm_agents{where} ORDER BY started_ts"
        )
        return [agent_dict(r) for r in rows]

    def mark_ohm_agent_exited(
        self, agent_key: str, *, exit_code: int | None, ended_ts: float
    ) -> None:
        self._write(
            lambda c: c.execute(
                "UPDATE ohm_agents SET status='exited', exit_code=?, ended_ts=? WHERE agent_key=?",
                (exit_code, ended_ts, agent_key),
            ),
            "mark a spawned agent exited",
        )

    def mark_seen(self, keys: Iterable[str], ts: float) -> None:
        rows = [(k, ts, ts) for k in dict.fromkeys(keys)]
        if not rows:
            return
        self._write(
            lambda c: c.executemany(
                "INSERT INTO ohm_seen (agent_key, first_seen_ts, last_seen_ts) VALUES (?,?,?) "
                "ON CONFLICT(agent_key) DO UPDATE SET last_seen_ts=excluded.last_seen_ts",
                rows,
            ),
            "mark agents seen",
        )

    def seen(self, keys: Iterable[str]) -> set[str]:
        wanted = list(dict.fromkeys(keys))
        found: set[str] = set()
        for i in range(0, len(wanted), 500):
            chunk = wanted[i : i + 500]
            marks = ",".join("?" * len(chunk))
            rows = self._rows(f"SELECT agent_key FROM ohm_seen WHERE agent_key IN ({marks})", chunk)
            found.update(str(r[0]) for r in rows)
        return found

    def respawn_tally(self) -> list[tuple[str, bool, int]]:
        """``(agent_type, ok, respawns)``: the type from the crash respawned, else the task key."""
        rows = self._rows(
            "SELECT COALESCE(c.agent_type, CASE WHEN r.task_key LIKE 'type:%' "
            "THEN substr(r.task_key, 6) END, ''), r.ok, COUNT(*) "
            "FROM ohm_respawns r LEFT JOIN agent_crashes c ON c.crash_id = r.crash_id "
            "GROUP BY 1, 2",
            action="count respawns",
        )
        return [(str(r[0]), bool(r[1]), int(r[2])) for r in rows]
