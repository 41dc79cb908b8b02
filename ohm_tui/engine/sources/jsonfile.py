"""Era 1: ``data/orchestrator/agent_state.json`` (real or ohm format), read by
``statefile`` exactly as before, and re-parsed only when the file changed."""

from __future__ import annotations

import os
import time
from typing import Any

from ohm_tui.engine.config import Config
from ohm_tui.engine.model import AgentRecord
from ohm_tui.engine.sources import statefile
from ohm_tui.engine.sources.base import Source, SourceKind, SourceRead


class AgentStateSource(Source):
    """The JSON agent state file. Writes go through ``statefile.update_agent_state``
    (the fixer calls it directly: its locked protocol predates this interface)."""

    kind = SourceKind.AGENT_STATE
    era = 1

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        self.path = config.agent_state_path
        self.view: statefile.AgentStateView | None = None  # the last good view
        self._sig: tuple[int, int, int, int] | None = None

    @classmethod
    def detect(cls, config: Config) -> bool:
        return config.agent_state_path.exists() or config.work_loop_state_path.exists()

    def describe(self) -> str:
        return f"{self.path.name} in {self.path.parent.name}/ (era 1)"

    def owns(self, rec: AgentRecord) -> bool:
        return rec.source in ("real", "ohm")

    def read_view(self, *, racy_reread: bool = True) -> statefile.AgentStateView:
        """The state file, parsed again only when it changed: parsing 1,000 entries
        (a shlex split each) was most of a check's CPU time.

        A file changed within the last second is re-read by a check (``racy_reread``):
        a rewrite in the same clock tick can leave size and mtime as they were (git's
        "racy" case). The death path passes ``False``: a storm of deaths right after
        a rewrite must not parse the file once per death (the next check settles it).
        Raises ``StateFileError``.
        """
        try:
            st = os.stat(self.path)
            sig: tuple[int, int, int, int] | None = (
                st.st_ino,
                st.st_size,
                st.st_mtime_ns,
                st.st_ctime_ns,
            )
            settled = time.time() - st.st_mtime > 1.0
        except OSError:
            sig, settled = None, False
        if (settled or not racy_reread) and sig == self._sig and self.view is not None:
            return self.view
        self._sig = None
        view = statefile.read_agent_state_settled(self.path)  # a torn rewrite is read again
        self.view, self._sig = view, sig
        return view

    def read(self, now: float) -> SourceRead:
        out = SourceRead()
        try:
            self.view = self.read_view()
        except statefile.StateFileError as exc:
            out.error = exc.problem
            return out
        out.agents = list(self.view.agents)
        out.completed = list(self.view.completed)
        out.warnings = list(self.view.warnings)
        return out

    def details(self, problem: str) -> dict[str, Any]:
        return {"file": str(self.path), "problem": problem}
