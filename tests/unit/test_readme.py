"""The README stays true: every config key is documented, and CI runs exactly
the README's test command."""

from dataclasses import fields
from pathlib import Path

from ohm_tui.engine.config import Config

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
TEST_COMMAND = (
    "python3 -m venv .venv && .venv/bin/pip install '.[test]' && .venv/bin/python -m pytest"
)


def test_every_config_key_is_documented() -> None:
    missing = [f.name for f in fields(Config) if f"| `{f.name}` |" not in README]
    assert missing == []


def test_ci_runs_the_readme_test_command() -> None:
    assert TEST_COMMAND in README
    ci = (ROOT / ".ci" / "run").read_text()
    assert TEST_COMMAND.replace("pip install", "pip install -q") in ci


def test_quick_start_has_the_demo_command() -> None:
    assert "python3 -m venv .venv && .venv/bin/pip install . && .venv/bin/ohm demo" in README


def test_every_console_key_is_in_the_keys_table() -> None:
    from textual.binding import Binding

    from ohm_tui.tui.dashboard import DashboardScreen
    from ohm_tui.tui.timeline_panel import CrashTable

    section = README.split("## The console", 1)[1].split("\n## ", 1)[0]
    shown = {"question_mark": "?", "slash": "/", "end": "End", "escape": "esc"}
    missing = []
    for binding in [*DashboardScreen.BINDINGS, *CrashTable.BINDINGS]:
        if not isinstance(binding, Binding) or not binding.description:
            continue  # description-less bindings are the "why not" toasts behind greyed keys
        for key in binding.key.split(","):
            if f"`{shown.get(key, key)}`" not in section:
                missing.append(key)
    assert missing == []
