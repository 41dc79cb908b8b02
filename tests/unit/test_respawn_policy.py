"""The respawn policy and the lifecycle are pure: tables say what they decide."""

from __future__ import annotations

import pytest

from ohm_tui.engine.actions.policy import Decision, RespawnPolicy
from ohm_tui.engine.config import load_config
from ohm_tui.engine.model import RespawnState

POLICY = RespawnPolicy(
    max_attempts=3, backoff_base=10.0, backoff_factor=2.0, flap_window=300.0, flap_threshold=3
)
NOW = 1_000_000.0


def _state(attempts: int = 0, given_up: bool = False, fast: tuple[float, ...] = ()) -> RespawnState:
    return RespawnState(
        "task:t", attempts=attempts, given_up=given_up, recent_fast_exits=list(fast)
    )


@pytest.mark.parametrize(
    ("attempts", "expected"),
    [(-1, 0.0), (0, 0.0), (1, 10.0), (2, 20.0), (3, 40.0), (5, 160.0)],
)
def test_backoff_doubles_from_the_base(attempts: int, expected: float) -> None:
    assert POLICY.backoff(attempts) == expected


@pytest.mark.parametrize(
    ("name", "state", "crashed_ago", "decision", "due_in", "why"),
    [
        ("first crash respawns at once", _state(), 0.0, Decision.RESPAWN, None, ""),
        ("second crash waits the base", _state(attempts=1), 3.0, Decision.WAIT, 7.0, ""),
        ("backoff over: respawn", _state(attempts=1), 10.0, Decision.RESPAWN, None, ""),
        ("third waits twice the base", _state(attempts=2), 0.0, Decision.WAIT, 20.0, ""),
        ("limit reached", _state(attempts=3), 999.0, Decision.GIVE_UP, None, "3 respawns"),
        ("given up earlier", _state(attempts=1, given_up=True), 0.0, Decision.GAVE_UP, None, ""),
        (
            "flapping beats the backoff",
            _state(attempts=1, fast=(NOW - 1, NOW - 2, NOW - 3)),
            0.0,
            Decision.GIVE_UP,
            None,
            "flapping",
        ),
        (
            "old fast exits do not count",
            _state(fast=(NOW - 301, NOW - 302, NOW - 1)),
            0.0,
            Decision.RESPAWN,
            None,
            "",
        ),
        (
            "given up wins over flapping",
            _state(given_up=True, fast=(NOW, NOW, NOW)),
            0.0,
            Decision.GAVE_UP,
            None,
            "",
        ),
    ],
)
def test_decide(
    name: str,
    state: RespawnState,
    crashed_ago: float,
    decision: Decision,
    due_in: float | None,
    why: str,
) -> None:
    verdict = POLICY.decide(state, NOW - crashed_ago, NOW)
    assert verdict.decision is decision, name
    if due_in is None:
        assert verdict.due is None, name
    else:
        assert verdict.due == pytest.approx(NOW + due_in), name
    assert why in verdict.why, name


def test_policy_reads_the_config() -> None:
    cfg = load_config(None, data_dir="/nonexistent-ohm-data")
    policy = RespawnPolicy.from_config(cfg)
    assert policy.max_attempts == cfg.max_respawn_attempts
    assert policy.backoff(1) == cfg.respawn_backoff_base


@pytest.mark.parametrize(
    ("text", "argv"),
    [
        ("python agent.py --task 'spec 20'", ["python", "agent.py", "--task", "spec 20"]),
        ("python agent.py --task 'spec 20", ["python", "agent.py", "--task", "'spec", "20"]),
        ("", []),
        (None, []),
    ],
)
def test_split_command_falls_back_on_unbalanced_quotes(text: str | None, argv: list[str]) -> None:
    from ohm_tui.engine.model import split_command

    assert split_command(text) == argv
