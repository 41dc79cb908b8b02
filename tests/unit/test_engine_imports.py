"""The engine is importable without the UI: a Python process that imports the
whole public API and every engine module never loads textual."""

import pkgutil
import subprocess
import sys

import ohm_tui.engine


def test_engine_never_imports_textual() -> None:
    modules = [f"ohm_tui.engine.{m.name}" for m in pkgutil.iter_modules(ohm_tui.engine.__path__)]
    assert "ohm_tui.engine.monitor" in modules
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r} + ['ohm_tui', 'orchestrator_health_monitor']:\n"
        "    importlib.import_module(m)\n"
        "bad = sorted(m for m in sys.modules if m == 'textual' or m.startswith('textual.'))\n"
        "print(bad)\n"
        "raise SystemExit(1 if bad else 0)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_alerts_never_import_the_ui() -> None:
    """``ohm watch`` sends alerts without loading textual, the console or the endpoint."""
    import ohm_tui.alerts

    modules = [f"ohm_tui.alerts.{m.name}" for m in pkgutil.iter_modules(ohm_tui.alerts.__path__)]
    assert "ohm_tui.alerts.service" in modules
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}:\n"
        "    importlib.import_module(m)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] == 'textual'\n"
        "             or m.startswith(('ohm_tui.tui', 'ohm_tui.cli', 'ohm_tui.web')))\n"
        "print(bad)\n"
        "raise SystemExit(1 if bad else 0)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
