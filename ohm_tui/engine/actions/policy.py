"""The respawn policy: backoff, flapping, and respawn / wait / give up, as a decision.

Pure: numbers in, a ``Verdict`` out. No clock, no store, no process. The
respawner asks it about every crash and then does what it says (after the one
check the policy cannot make: another live run of the same task).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from ohm_tui.engine.config import Config
from ohm_tui.engine.fmt import count
from ohm_tui.engine.model import RespawnState


class Decision(StrEnum):
    RESPAWN = "respawn"  # start it again now
    WAIT = "wait"  # backoff not over: due at ``Verdict.due``
    GIVE_UP = "give_up"  # stop trying (flapping, or too many respawns); say why
    GAVE_UP = "gave_up"  # given up earlier: record, never respawn


@dataclass(frozen=True, slots=True)
class Verdict:
    decision: Decision
    due: float | None = None  # WAIT: when the backoff ends
    why: str = ""  # GIVE_UP: why, for the event and the alert


@dataclass(frozen=True, slots=True)
class RespawnPolicy:
    max_attempts: int
    backoff_base: float
    backoff_factor: float
    flap_window: float
    flap_threshold: int

    @classmethod
    def from_config(cls, cfg: Config) -> RespawnPolicy:
        return cls(
            max_attempts=cfg.max_respawn_attempts,
            backoff_base=cfg.respawn_backoff_base,
            backoff_factor=cfg.respawn_backoff_factor,
            flap_window=cfg.flap_window,
            flap_threshold=cfg.flap_threshold,
        )

    def backoff(self, attempts: int) -> float:
        """Seconds to wait after a crash before respawn number ``attempts + 1``."""
        if attempts <= 0:
            return 0.0
        return float(self.backoff_base * self.backoff_factor ** (attempts - 1))

    def fast_exits(self, st: RespawnState, now: float) -> int:
        """Fast exits of this task inside the flapping window."""
        return len([t for t in st.recent_fast_exits if now - t <= self.flap_window])

    def is_flapping(self, st: RespawnState, now: float) -> bool:
        return self.fast_exits(st, now) >= self.flap_threshold

    def decide(self, st: RespawnState, crashed_at: float, now: float) -> Verdict:
        """What to do about a crash of the task ``st`` counts, at ``now``."""
        if st.given_up:
            return Verdict(Decision.GAVE_UP)
        if self.is_flapping(st, now):
            return Verdict(Decision.GIVE_UP, why="flapping: exits soon after every start")
        if st.attempts >= self.max_attempts:
            return Verdict(Decision.GIVE_UP, why=f"{count(st.attempts, 'respawn')} did not help")
        due = crashed_at + self.backoff(st.attempts)
        if now < due:
            return Verdict(Decision.WAIT, due=due)
        return Verdict(Decision.RESPAWN)
