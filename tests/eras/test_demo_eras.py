"""``ohm demo --era 2|3``: the sample orchestrator as released versions run it,
watched end to end by a real monitor, and stopped without survivors."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from ohm_tui import OrchestratorHealthMonitor
from ohm_tui.demo.session import DemoSession
from ohm_tui.engine.config import load_config
from ohm_tui.engine.sources.sessions import NOT_RESPAWNED
from tests.helpers import wait_until


def _rows(db: Path, sql: str) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def _monitor(session: DemoSession) -> OrchestratorHealthMonitor:
    overrides = {**session.config_overrides(), "auto_fix": True}
    cfg = load_config(None, data_dir=session.state_dir, overrides=overrides, search_cwd=False)
    return OrchestratorHealthMonitor(cfg, name="demo-era-test")


def test_demo_era2_crash_is_respawned_and_registered(tmp_path: Path) -> None:
    with DemoSession(tmp_path / "d2", speed=20, freeze_every=0, era=2) as session:
        assert not (session.state_dir / "orchestrator" / "agent_state.json").exists()
        with _monitor(session) as mon:
            mon.start()
            wait_until(
                lambda: any(e.kind == "respawned" for e in mon.events()),
                timeout=40,
                interval=0.1,
                message="a crashed era-2 agent respawned",
            )
            report = mon.check()
            assert "agent_lifecycle in orchestrator.db (era 2)" in report.sources
            assert report.orchestrator_last_poll is not None
            assert report.orchestrator_last_poll < 30
            mine = _rows(
                session.state_dir / "orchestrator.db",
                "SELECT metadata FROM agent_lifecycle WHERE metadata LIKE '%respawned_by%'",
            )
            assert mine and json.loads(str(mine[0][0]))["respawned_by"] == "ohm"
            mon.stop()
    assert session.survivors() == []


def test_demo_era3_sessions_fail_with_cost_recorded(tmp_path: Path) -> None:
    with DemoSession(tmp_path / "d3", speed=20, freeze_every=0, era=3) as session:
        with _monitor(session) as mon:
            mon.start()
            wait_until(
                lambda: any(c.action_taken == NOT_RESPAWNED for c in mon.crashes()),
                timeout=40,
                interval=0.1,
                message="a failed session recorded, not respawned",
            )
            report = mon.check()
            assert "agent_lifecycle in orchestrator.db (era 3)" in report.sources
            assert "claude_invocations in claude_invocations.db (era 3)" in report.sources
            assert not [e for e in mon.events(limit=500) if e.kind == "respawned"]
            mon.stop()
        calls = session.state_dir / "claude_invocations.db"
        wait_until(
            lambda: _rows(calls, "SELECT COUNT(*) FROM claude_invocations WHERE cost_usd > 0")[0][
                0
            ],
            timeout=20,
            interval=0.1,
        )
        (n,) = _rows(calls, "SELECT COUNT(*) FROM claude_invocations WHERE status='error'")[0]
        assert n >= 1
    assert session.survivors() == []
