"""ohm's history in SQLite (``data/orchestrator.db``), shared with the real orchestrator.

The database may already hold the real orchestrator's tables (``agent_lifecycle``,
``orchestrator_state``, ``bugs``). Opening it never drops or alters those: ohm's
tables are created with ``IF NOT EXISTS`` and the real tracker's ``bugs`` table is
only created when absent. ohm's own columns for a bug live in ``ohm_bug_meta``.

Several ohm processes (a console, a CLI, an embedded monitor) may write at once,
so every write runs under ``BEGIN IMMEDIATE`` and waits for a busy database up to
``lock_wait`` seconds before giving up with a ``StoreError`` that says why.
All times are UTC epoch floats; text time columns required by the seed's schema
are written as ISO UTC next to a REAL column that is what queries compare.

Layout (the ``Store`` façade is what callers use; its parts are one module each):
``database`` (the one connection: open, migrate, retry, transactions; and
``Repository``, the base of a thin repository over it), ``schema`` (tables and
migrations), ``rows`` (row mapping, error kinds), and one repository per concern,
each an object given the one ``Database``: ``crashes`` (+ health checks, claims),
``respawns`` (ledger, spawned agents, runs seen), ``events``, ``bugs``, ``lease``,
``acks``, ``retention``. A repository never calls another: work that spans two
(a respawn's claim and its ledger row) is the caller's, inside ``transaction()``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Self

from ohm_tui.engine.model import RespawnState
from ohm_tui.engine.store.acks import AckRepository
from ohm_tui.engine.store.base import (
    BUG_PRIORITIES,
    BUG_STATUSES,
    FIX_STATES,
    MAX_TEXT,
    OPEN_STATUSES,
    StoreError,
)
from ohm_tui.engine.store.bugs import BugRepository
from ohm_tui.engine.store.crashes import CrashRepository
from ohm_tui.engine.store.database import Database
from ohm_tui.engine.store.events import EventRepository
from ohm_tui.engine.store.lease import LeaseRepository
from ohm_tui.engine.store.respawns import RespawnRepository
from ohm_tui.engine.store.retention import RetentionRepository
from ohm_tui.engine.store.schema import MIGRATIONS, SCHEMA_VERSION

__all__ = [
    "BUG_PRIORITIES",
    "BUG_STATUSES",
    "FIX_STATES",
    "MAX_TEXT",
    "MIGRATIONS",
    "OPEN_STATUSES",
    "SCHEMA_VERSION",
    "RespawnState",
    "Store",
    "StoreError",
]


class Store:
    """ohm's database: one ``Database`` and a thin repository per concern over it.

    The façade callers use: one object, today's method names. Each name below is
    the repository's own bound method, so strict mypy checks every call against
    the repository's signature; a repository method the façade should offer needs
    one line here.
    """

    def __init__(
        self,
        path: Path | str,
        *,
        busy_timeout: float = 10.0,
        lock_wait: float = 15.0,
        read_only: bool = False,
    ) -> None:
        self.db = Database(
            path, busy_timeout=busy_timeout, lock_wait=lock_wait, read_only=read_only
        )
        self.crashes = CrashRepository(self.db)
        self.respawns = RespawnRepository(self.db)
        self.events = EventRepository(self.db)
        self.bugs = BugRepository(self.db)
        self.lease = LeaseRepository(self.db)
        self.acks = AckRepository(self.db)
        self.retention = RetentionRepository(self.db)
        # the database itself
        self.transaction = self.db.transaction
        self.integrity_ok = self.db.integrity_ok
        self.close = self.db.close
        # crashes, health checks, claims
        self.record_health_check = self.crashes.record_health_check
        self.list_health_checks = self.crashes.list_health_checks
        self.record_crash = self.crashes.record_crash
        self.record_crashes = self.crashes.record_crashes
        self.crash_groups = self.crashes.crash_groups
        self.task_crash_ids = self.crashes.task_crash_ids
        self.get_crash = self.crashes.get_crash
        self.latest_crash_of_task = self.crashes.latest_crash_of_task
        self.crash_by_key = self.crashes.crash_by_key
        self.list_crashes = self.crashes.list_crashes
        self.count_crashes = self.crashes.count_crashes
        self.crash_histogram = self.crashes.crash_histogram
        self.oldest_crash_since = self.crashes.oldest_crash_since
        self.pending_crashes = self.crashes.pending_crashes
        self.claim_crash = self.crashes.claim_crash
        self.finish_crash = self.crashes.finish_crash
        self.set_crash_bug = self.crashes.set_crash_bug
        self.claimed_crashes = self.crashes.claimed_crashes
        self.release_claim = self.crashes.release_claim
        self.respawn_of_crash = self.crashes.respawn_of_crash
        self.ohm_agent_respawning = self.crashes.ohm_agent_respawning
        self.release_stale_claims = self.crashes.release_stale_claims
        self.crash_tally = self.crashes.crash_tally
        # the respawn ledger, agents ohm spawned, runs seen
        self.get_respawn_state = self.respawns.get_respawn_state
        self.respawn_states = self.respawns.respawn_states
        self.given_up_states = self.respawns.given_up_states
        self.save_respawn_state = self.respawns.save_respawn_state
        self.add_respawn = self.respawns.add_respawn
        self.respawn_success_rate = self.respawns.respawn_success_rate
        self.recovery_rate = self.respawns.recovery_rate
        self.failed_respawns = self.respawns.failed_respawns
        self.operator_stop = self.respawns.operator_stop
        self.add_ohm_agent = self.respawns.add_ohm_agent
        self.ohm_agent = self.respawns.ohm_agent
        self.list_ohm_agents = self.respawns.list_ohm_agents
        self.mark_ohm_agent_exited = self.respawns.mark_ohm_agent_exited
        self.mark_seen = self.respawns.mark_seen
        self.seen = self.respawns.seen
        self.respawn_tally = self.respawns.respawn_tally
        # the timeline
        self.add_event = self.events.add_event
        self.add_status_change = self.events.add_status_change
        self.list_events = self.events.list_events
        self.event_data = self.events.event_data
        self.last_event_ts = self.events.last_event_ts
        self.event_tally = self.events.event_tally
        # the tracker
        self.next_bug_number = self.bugs.next_bug_number
        self.insert_bug = self.bugs.insert_bug
        self.get_bug = self.bugs.get_bug
        self.bug_metadata = self.bugs.bug_metadata
        self.list_bugs = self.bugs.list_bugs
        self.open_bug_by_fingerprint = self.bugs.open_bug_by_fingerprint
        self.update_bug = self.bugs.update_bug
        self.touch_bug = self.bugs.touch_bug
        self.last_bug_created_ts = self.bugs.last_bug_created_ts
        self.count_open_bugs = self.bugs.count_open_bugs
        self.open_bug_tally = self.bugs.open_bug_tally
        # the fixer lease
        self.acquire_lease = self.lease.acquire_lease
        self.release_lease = self.lease.release_lease
        self.lease_holder = self.lease.lease_holder
        # acknowledgements
        self.add_ack = self.acks.add_ack
        self.open_acks = self.acks.open_acks
        self.list_acks = self.acks.list_acks
        self.end_ack = self.acks.end_ack
        self.set_ack_missing = self.acks.set_ack_missing
        # retention
        self.prune = self.retention.prune

    @classmethod
    def open_readonly(cls, path: Path | str, **kwargs: Any) -> Self:
        """An observer's store: reads work, every write raises ``StoreError``."""
        return cls(path, read_only=True, **kwargs)

    @property
    def path(self) -> Path:
        return self.db.path

    @property
    def read_only(self) -> bool:
        return self.db.read_only

    @property
    def schema_version(self) -> int:
        return self.db.schema_version

    @property
    def bug_columns(self) -> frozenset[str]:
        """Columns of the ``bugs`` table as found (the real tracker's may have more)."""
        return self.bugs.bug_columns

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
