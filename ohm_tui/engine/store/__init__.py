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
``database`` (the one connection: open, migrate, retry, transactions), ``schema``
(tables and migrations), ``rows`` (row mapping, error kinds), and one repository per
concern: ``crashes`` (+ health checks, claims), ``respawns`` (ledger, spawned
agents, runs seen), ``events``, ``bugs``, ``lease``, ``acks``, ``retention``.
"""

from __future__ import annotations

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


class Store(
    CrashRepository,
    RespawnRepository,
    EventRepository,
    BugRepository,
    LeaseRepository,
    AckRepository,
    RetentionRepository,
):
    """ohm's database: one ``Database`` connection with every repository on it.

    Callers keep one object and today's method names; each repository is a thin
    class over the shared connection (a mixin of ``Database``), one module each.
    """
