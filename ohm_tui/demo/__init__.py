"""A live sample orchestrator with fake agents (stdlib only), for ``ohm demo``,
tests, screenshots and benchmarks. It must look foreign to ohm: ohm watches it
only through its files and processes, as it would watch a real orchestrator.

Names are imported lazily: ``python -m ohm_tui.demo.orchestrator`` imports this
package first, and an eager import of that module here would make runpy warn.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ohm_tui.demo.orchestrator import plan
    from ohm_tui.demo.session import DemoSession

__all__ = ["DemoSession", "plan"]


def __getattr__(name: str) -> Any:
    if name == "DemoSession":
        from ohm_tui.demo.session import DemoSession

        return DemoSession
    if name == "plan":
        from ohm_tui.demo.orchestrator import plan

        return plan
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
