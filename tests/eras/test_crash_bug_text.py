"""A crash bug says the error once: ``architect agent crashes with ImportError:
SkillNames``, not ``ImportError: ImportError: SkillNames``; and a root cause that
only repeats the error is not told again as one (description, ticket)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ohm_tui.demo.lifecycle_db import InvocationsDB, LifecycleDB, local_now

CMD = "claude --agent architect (session)"


def test_a_crash_bug_title_says_the_error_type_once(data_dir: Path, monitor: Any) -> None:
    db = LifecycleDB(data_dir)
    db.heartbeat()
    tid = 2**40 + 5
    db.register(tid, "architect", "spec-22", CMD, status="running", spawned_at=local_now())
    calls = InvocationsDB(data_dir)
    call = calls.start("architect", "write the spec", session_id=f"spec-22-{tid}")
    calls.finish(call, "error", error="ImportError: SkillNames")
    mon = monitor(auto_fix=False, crash_threshold_for_bug=1)
    report = mon.check()
    (crash,) = mon.crashes()
    assert (crash.error_type, crash.error_message) == ("ImportError", "SkillNames")
    assert mon.report_bugs_if_any(report)
    (bug,) = mon.bugs()
    assert bug.title == "architect agent crashes with ImportError: SkillNames"
    assert bug.description.count("SkillNames") == 1, bug.description
    assert "Root cause" not in bug.description
    assert not bug.root_cause
