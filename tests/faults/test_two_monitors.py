"""Two monitors at once (three, in fact): the console, ``ohm watch`` as a real process,
and an embedded API monitor, all on one state directory.

Only the holder of the fixer lease acts; the others observe. No agent is ever
respawned twice for one crash, no bug is filed twice, and when the holder dies
(SIGKILL) another monitor takes over.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import psutil

from ohm_tui import OrchestratorHealthMonitor
from tests.faults.kit import (
    PY,
    MonitorFactory,
    Orchestrator,
    base_config,
    count,
    crash_once_argv,
    python_env,
    q,
)

IMPORT_ERROR = (
    "ImportError: cannot import name 'SkillNames' from 'coffee_maker.autonomous.skill_loader'"
)


def _toml(cfg: dict[str, object]) -> str:
    return "\n".join(f"{k} = {json.dumps(v)}" for k, v in cfg.items()) + "\n"


async def _until(cond: Callable[[], object], timeout: float = 15.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"not within {timeout:g}s: {what}"
        await asyncio.sleep(0.02)


def _holder(database: Path) -> tuple[str, int] | None:
    rows = q(database, "SELECT holder, holder_pid FROM ohm_lease WHERE name='fixer'")
    return (str(rows[0][0]), int(rows[0][1])) if rows else None


def _respawns_of(database: Path, key: str) -> int:
    return count(database, "SELECT COUNT(*) FROM ohm_respawns WHERE old_key=? AND ok=1", (key,))


def _checks_by(database: Path, prefix: str) -> int:
    return count(
        database, "SELECT COUNT(*) FROM health_checks WHERE monitor LIKE ?", (prefix + "%",)
    )


def _spawner_of(database: Path, old_key: str) -> int:
    """The process that started the respawned run: its runner's parent."""
    (pid,) = q(database, "SELECT pid FROM ohm_agents WHERE respawn_of=?", (old_key,))[0]
    return psutil.Process(psutil.Process(int(pid)).ppid()).ppid()


async def test_console_watch_and_api_share_one_state_dir(
    orch: Orchestrator, ohm: MonitorFactory, data_dir: Path, tmp_path: Path
) -> None:
    from ohm_tui.tui.app import make_app

    a = orch.start("architect", "spec-a", argv=crash_once_argv(IMPORT_ERROR))
    b = orch.start("code_developer", "impl-b", argv=crash_once_argv())
    cfg = base_config(data_dir, health_check_interval=0.2, lease_ttl=30.0)
    conf = tmp_path / "ohm.toml"
    conf.write_text(_toml(cfg))
    database = data_dir / "orchestrator.db"

    watch = subprocess.Popen(
        [PY, "-m", "ohm_tui", "watch", "--data-dir", str(data_dir), "--config", str(conf)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=python_env(),
    )
    try:
        await _until(lambda: (_holder(database) or ("", 0))[1] == watch.pid, what="watch fixes")
        api = OrchestratorHealthMonitor(str(conf), name="api")
        console_mon = OrchestratorHealthMonitor(str(conf), name="console")
        ohm.made += [api, console_mon]
        api.start()
        app = make_app(console_mon)
        app.refresh_interval = 0.2
        async with app.run_test(size=(120, 40)):
            await _until(lambda: app.frames >= 1 and console_mon.running, what="console up")
            await _until(
                lambda: _checks_by(database, "api") and _checks_by(database, "console"),
                what="all three checking",
            )
            assert not api.is_fixer() and not console_mon.is_fixer()  # they observe

            # Crash A (ImportError): one respawn, by watch; one bug.
            a.crash()
            await _until(lambda: _respawns_of(database, a.key) >= 1, what="A respawned")
            assert _spawner_of(database, a.key) == watch.pid
            await _until(lambda: count(database, "SELECT COUNT(*) FROM bugs") >= 1, what="bug")
            seen = (_checks_by(database, "api"), _checks_by(database, "console"))
            await _until(
                lambda: (
                    _checks_by(database, "api") >= seen[0] + 3
                    and _checks_by(database, "console") >= seen[1] + 3
                ),
                what="more cycles by every monitor",
            )
            assert _respawns_of(database, a.key) == 1
            assert count(database, "SELECT COUNT(*) FROM bugs") == 1
            assert count(database, "SELECT COUNT(*) FROM ohm_events WHERE kind='bug_filed'") == 1
            assert count(database, "SELECT COUNT(*) FROM agent_crashes") == 1
            assert count(database, "SELECT COUNT(*) FROM ohm_events WHERE kind='crashed'") == 1
            # The console observed it all the same.
            await _until(
                lambda: (
                    app.snapshot is not None
                    and any(c.agent_key == a.key for c in app.snapshot.crashes)
                ),
                what="console shows the crash",
            )

            # The fixer dies without a word: another monitor takes over.
            watch.send_signal(signal.SIGKILL)
            watch.wait(timeout=10)
            await _until(
                lambda: (_holder(database) or ("", 0))[0].split(":")[0] in ("api", "console"),
                what="lease taken over",
            )
            taker = (_holder(database) or ("", 0))[0].split(":")[0]
            b.crash()
            await _until(lambda: _respawns_of(database, b.key) >= 1, what="B respawned")
            assert _spawner_of(database, b.key) == os.getpid()
            seen = (_checks_by(database, "api"), _checks_by(database, "console"))
            await _until(
                lambda: (
                    _checks_by(database, "api") >= seen[0] + 3
                    and _checks_by(database, "console") >= seen[1] + 3
                ),
                what="more cycles by every monitor",
            )
            assert _respawns_of(database, b.key) == 1
            assert _respawns_of(database, a.key) == 1  # still: the take-over redid nothing
            assert count(database, "SELECT COUNT(*) FROM bugs") == 1
            assert count(database, "SELECT COUNT(*) FROM agent_crashes") == 2
            fixers = [m for m in (api, console_mon) if m.is_fixer()]
            assert [m.name for m in fixers] == [taker]
    finally:
        if watch.poll() is None:
            watch.kill()
        watch.wait(timeout=10)
        if watch.stderr is not None:
            with contextlib.suppress(OSError):
                watch.stderr.close()
