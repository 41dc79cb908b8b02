"""The monitor is a thin façade over parts it owns (check engine, read models, loop,
operator's actions), not one class built by inheritance; no part can reach the
façade, so none can call back into it (the god-class shape the re-layering ended)."""

from __future__ import annotations

import inspect
import threading
from pathlib import Path

from ohm_tui.engine.monitor import OrchestratorHealthMonitor
from ohm_tui.engine.monitor.checkengine import CheckEngine
from ohm_tui.engine.monitor.events import EventBus
from ohm_tui.engine.monitor.loop import EngineLoop
from ohm_tui.engine.monitor.loopstate import EngineLoopState
from ohm_tui.engine.monitor.operations import Operations
from ohm_tui.engine.monitor.views import ReadModel

MAX_CLASS_LINES = 400

# What the faces, the tests and an embedding orchestrator call today.
PUBLIC_API = [
    "acknowledge",
    "add_listener",
    "agent_log_tail",
    "auto_fix",
    "auto_fix_issues",
    "bug",
    "bugs",
    "check",
    "check_health",
    "clean_zombies",
    "close",
    "close_bug",
    "config",
    "context",
    "cost",
    "crash",
    "crashes",
    "describe_respawn",
    "event",
    "events",
    "file_bug",
    "fixer",
    "is_fixer",
    "last_check_seconds",
    "last_report",
    "list_acks",
    "name",
    "notifier",
    "on_death",
    "orchestrator_cwd",
    "plan_zombie_cleanup",
    "process_cwd",
    "read_only",
    "remove_listener",
    "reopen_bug",
    "report_bugs_if_any",
    "reporter",
    "resolve_agent",
    "respawn",
    "respawn_plan",
    "running",
    "set_bug_priority",
    "simulate_crash",
    "snapshot",
    "spawn_agent",
    "start",
    "stop",
    "stop_agent",
    "store",
    "tracker",
    "unacknowledge",
    "wake",
    "watching",
]


def _paths_to(target: object, root: object) -> list[str]:
    """Every path from ``root``'s attributes that reaches ``target`` again: through
    ohm's own objects, containers, bound methods (``__self__``) and closures."""
    found: list[str] = []
    seen: set[int] = {id(root)}

    def walk(obj: object, path: str, depth: int) -> None:
        if obj is target:
            found.append(path)
            return
        if id(obj) in seen or depth > 8 or isinstance(obj, (str, bytes, int, float, type)):
            return
        seen.add(id(obj))
        if isinstance(obj, dict):
            for k, v in list(obj.items()):
                walk(v, f"{path}[{k!r}]", depth + 1)
        elif isinstance(obj, (list, tuple, set, frozenset)):
            for i, v in enumerate(list(obj)):
                walk(v, f"{path}[{i}]", depth + 1)
        elif inspect.ismethod(obj):
            walk(obj.__self__, f"{path}.__self__", depth + 1)
        elif inspect.isfunction(obj):
            for i, cell in enumerate(obj.__closure__ or ()):
                walk(cell.cell_contents, f"{path}.<closure {i}>", depth + 1)
        elif type(obj).__module__.startswith("ohm_tui."):
            for name, value in list(vars(obj).items()) if hasattr(obj, "__dict__") else []:
                walk(value, f"{path}.{name}", depth + 1)

    for name, value in vars(root).items():
        walk(value, f"monitor.{name}", 1)
    return found


def test_no_part_of_the_monitor_can_reach_the_facade(tmp_path: Path) -> None:
    mon = OrchestratorHealthMonitor({"data_dir": str(tmp_path / "data")}, name="parts")
    try:
        mon.check()
        mon.snapshot()
        mon.add_listener(lambda ev: None)
        assert _paths_to(mon, mon) == []
    finally:
        mon.close()


def test_the_facade_inherits_nothing_and_each_part_is_a_small_class() -> None:
    assert OrchestratorHealthMonitor.__mro__ == (OrchestratorHealthMonitor, object)
    for part in (ReadModel, EngineLoop, Operations, EngineLoopState, EventBus):
        assert part.__mro__ == (part, object), part
    for cls in (OrchestratorHealthMonitor, ReadModel, EngineLoop, Operations, CheckEngine):
        lines = len(inspect.getsourcelines(cls)[0])
        assert lines <= MAX_CLASS_LINES, f"{cls.__name__}: {lines} lines"


def test_the_facade_keeps_every_public_name(tmp_path: Path) -> None:
    missing = [n for n in PUBLIC_API if not hasattr(OrchestratorHealthMonitor, n)]
    assert missing == []
    mon = OrchestratorHealthMonitor({"data_dir": str(tmp_path / "data")}, name="parts")
    try:
        assert isinstance(mon._lock, type(threading.RLock()))  # tests and the bench peek
        assert mon._watcher is None and mon._observations == {} and mon._last_view is None
        mon.auto_fix = False  # the console's `f` and read-only faces set it
        assert mon.auto_fix is False and mon.snapshot().auto_fix is False
    finally:
        mon.close()
