"""The agent lifecycle: every allowed transition and its event, forbidden ones refused,
the one mapping to what the faces show, and the stored fix states unchanged."""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

import pytest

from ohm_tui.engine.config import load_config
from ohm_tui.engine.context import EngineContext
from ohm_tui.engine.model import (
    FIX_STATE_OF,
    LIVE,
    TRANSITIONS,
    Event,
    EventKind,
    FixState,
    IllegalTransition,
    Lifecycle,
    Liveness,
    advance,
    shown_status,
    task_phase,
)
from ohm_tui.engine.notify import Notifier
from ohm_tui.engine.sources.registry import SourceSet
from ohm_tui.engine.store import FIX_STATES, Store
from ohm_tui.engine.system.spawner import Spawner
from ohm_tui.tui.agents_panel import STATUS_RANK
from ohm_tui.tui.tones import STATUS_TONES

L = Lifecycle
K = EventKind
_OBSERVED = (L.RUNNING, L.STALLED, L.ZOMBIE)
_ENDED = (L.CRASHED, L.RESPAWN_FAILED, L.GIVEN_UP, L.COMPLETED, L.KILLED, L.STALE)

# Written out by hand (not computed like the table it checks): every allowed move.
ALLOWED: dict[tuple[Lifecycle, Lifecycle], EventKind | None] = {
    (L.RUNNING, L.STALLED): None,
    (L.STALLED, L.RUNNING): None,
    (L.RUNNING, L.ZOMBIE): None,
    (L.STALLED, L.ZOMBIE): None,
    **{(f, L.CRASHED): K.CRASHED for f in _OBSERVED},
    **{(f, t): None for f in _OBSERVED for t in (L.COMPLETED, L.KILLED, L.STALE)},
    (L.CRASHED, L.RESPAWNING): None,
    (L.CRASHED, L.GIVEN_UP): K.GAVE_UP,
    (L.RESPAWNING, L.GIVEN_UP): K.GAVE_UP,
    **{(f, L.STOPPING): K.STOPPED_BY_OPERATOR for f in _OBSERVED},
    **{(f, L.RESTARTING): K.RESTARTED_BY_OPERATOR for f in _OBSERVED},
    (L.STOPPING, L.KILLED): K.STOPPED,
    (L.RESTARTING, L.KILLED): None,
    (L.STOPPING, L.RUNNING): K.STOP_FAILED,
    (L.RESTARTING, L.RUNNING): K.STOP_FAILED,
    **{(f, L.RUNNING): K.RESPAWNED for f in (*_ENDED, L.RESPAWNING)},
    **{(f, L.RESPAWN_FAILED): K.RESPAWN_FAILED for f in (*_ENDED, L.RESPAWNING)},
}


def test_the_table_is_exactly_the_allowed_moves() -> None:
    assert TRANSITIONS == ALLOWED


@pytest.mark.parametrize(("current", "target"), sorted(ALLOWED))
def test_every_allowed_transition_is_told_by_its_event(
    current: Lifecycle, target: Lifecycle
) -> None:
    assert advance(current, target) is ALLOWED[(current, target)]


FORBIDDEN = [
    (L.GIVEN_UP, L.GIVEN_UP),  # given up once
    (L.RUNNING, L.GIVEN_UP),  # only a crash is given up on
    (L.RUNNING, L.RUNNING),  # a live run is never respawned
    (L.STALLED, L.RESPAWNING),
    (L.RUNNING, L.RESPAWN_FAILED),
    (L.CRASHED, L.CRASHED),  # one death, one crash
    (L.CRASHED, L.STOPPING),  # a dead run is never stopped (its crash is a crash)
    (L.COMPLETED, L.CRASHED),  # an ended run does not crash later
    (L.COMPLETED, L.GIVEN_UP),
    (L.KILLED, L.STOPPING),
    (L.STOPPING, L.CRASHED),  # a stop's death is never a crash
    (L.STOPPING, L.RESPAWN_FAILED),
    (L.RESTARTING, L.GIVEN_UP),
    (L.RESPAWNING, L.CRASHED),
    (L.GIVEN_UP, L.RESPAWNING),  # only the operator brings a given-up task back
    (L.ZOMBIE, L.RUNNING),  # a zombie is dead
]


@pytest.mark.parametrize(("current", "target"), FORBIDDEN)
def test_forbidden_transitions_are_refused(current: Lifecycle, target: Lifecycle) -> None:
    assert (current, target) not in TRANSITIONS
    with pytest.raises(IllegalTransition, match=f"from {current} to {target}"):
        advance(current, target)


def _context(tmp_path: Path, told: list[tuple[str, str, dict[str, Any]]]) -> EngineContext:
    cfg = load_config(None, data_dir=tmp_path)

    def emit(kind: str, message: str, **fields: Any) -> Event | None:
        told.append((kind, message, fields))
        return Event(len(told), 0.0, kind, message, agent_key=fields.get("agent_key"))

    def no_store() -> Store:
        raise AssertionError("a move never opens the store")

    return EngineContext(
        config=cfg,
        notifier=Notifier(cfg),
        sources=SourceSet(cfg),
        emit=emit,
        open_store=no_store,
        holder="test",
        lock=threading.RLock(),
        spawner=Spawner(prewarm=False, name="test"),  # a move never starts anything
    )


def test_move_emits_the_event_of_an_allowed_transition(tmp_path: Path) -> None:
    told: list[tuple[str, str, dict[str, Any]]] = []
    ctx = _context(tmp_path, told)
    ev = ctx.move(L.CRASHED, L.RUNNING, "respawned 1/3", agent_key="1@2")
    assert ev is not None and ev.kind == K.RESPAWNED
    assert told == [(K.RESPAWNED, "respawned 1/3", {"agent_key": "1@2"})]


def test_move_without_an_event_emits_nothing(tmp_path: Path) -> None:
    told: list[tuple[str, str, dict[str, Any]]] = []
    assert _context(tmp_path, told).move(L.CRASHED, L.RESPAWNING, "", agent_key="1@2") is None
    assert told == []


def test_an_illegal_move_is_refused_logged_and_not_told(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    told: list[tuple[str, str, dict[str, Any]]] = []
    ctx = _context(tmp_path, told)
    with caplog.at_level(logging.ERROR, logger="ohm.lifecycle"):
        assert ctx.move(L.RUNNING, L.GIVEN_UP, "gave up", agent_key="1@2") is None
    assert told == []  # nothing recorded that did not happen
    assert "refused for 1@2: an agent run cannot go from running to given_up" in caplog.text


A = Liveness.ALIVE


@pytest.mark.parametrize(
    ("liveness", "kw", "shown"),
    [
        (A, {}, L.RUNNING),
        (A, {"stalled": True}, L.STALLED),
        (A, {"respawn_failed": True, "operator_stopped": True}, L.RUNNING),  # alive wins
        (Liveness.ZOMBIE, {}, L.ZOMBIE),
        (Liveness.NOT_RUNNING, {"record_status": "killed"}, L.KILLED),
        (Liveness.NOT_RUNNING, {"record_status": "completed"}, L.COMPLETED),
        (Liveness.NOT_RUNNING, {"record_status": "completed", "exit_code": 3}, L.CRASHED),
        (Liveness.ENDED_OK, {"record_status": "killed"}, L.COMPLETED),  # the runner said 0
        (Liveness.ENDED_OK, {"exit_code": 0}, L.COMPLETED),
        (Liveness.DEAD, {"is_crash": True}, L.CRASHED),
        (Liveness.DEAD, {"is_crash": True, "next_respawn_at": 5.0}, L.RESPAWNING),
        (Liveness.DEAD, {"is_crash": True, "given_up": True, "next_respawn_at": 5.0}, L.GIVEN_UP),
        (Liveness.DEAD, {}, L.STALE),
        (Liveness.DEAD, {"is_crash": True, "respawn_failed": True}, L.RESPAWN_FAILED),
        (Liveness.DEAD, {"operator_stopped": True}, L.COMPLETED),
        (Liveness.ZOMBIE, {"respawn_failed": True, "operator_stopped": True}, L.RESPAWN_FAILED),
    ],
)
def test_shown_status_is_derived_in_one_place(
    liveness: Liveness, kw: dict[str, Any], shown: Lifecycle
) -> None:
    args: dict[str, Any] = {"record_status": "running", "exit_code": None, "is_crash": False}
    args.update(kw)
    assert shown_status(liveness, **args) is shown


def test_the_respawn_ledger_maps_to_the_lifecycle() -> None:
    assert task_phase(True, 5.0) is L.GIVEN_UP
    assert task_phase(False, 5.0) is L.RESPAWNING
    assert task_phase(False, None) is None


def test_stored_fix_states_keep_their_words() -> None:
    # Old databases hold these words in agent_crashes.fix_state: they must not change.
    assert FIX_STATES == ("pending", "claimed", "done", "skipped")
    assert FIX_STATE_OF[L.CRASHED] == FIX_STATE_OF[L.RESPAWNING] == FixState.PENDING == "pending"
    assert {FIX_STATE_OF[s] for s in (L.RUNNING, L.GIVEN_UP, L.RESPAWN_FAILED)} == {"done"}


def test_stored_and_shown_words_are_unchanged() -> None:
    # The --json output, the metrics labels and ohm_events.kind keep their words.
    assert {s.value for s in Lifecycle} >= {
        "running", "crashed", "respawning", "given_up", "zombie", "stalled",
        "completed", "killed", "stale", "respawn_failed",
    }  # fmt: skip
    assert K.CRASHED == "crashed"
    assert {v.value for v in Liveness} == {"alive", "zombie", "dead", "ended_ok", "not_running"}


def test_every_shown_status_has_a_tone_and_a_rank() -> None:
    shown = set(Lifecycle) - {L.STOPPING, L.RESTARTING}  # moments, never a row's status
    assert shown <= set(STATUS_TONES) and shown <= set(STATUS_RANK)
    assert {L.RUNNING, L.STALLED, L.ZOMBIE} == LIVE
