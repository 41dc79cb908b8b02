"""Bad configuration: an error that names the key, before anything runs.

"Before anything runs" is checked on disk: the data directory stays empty (no
database, no log folder, no ticket), and no command from the config is started.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from ohm_tui import OrchestratorHealthMonitor
from ohm_tui.engine.config import ConfigError, load_config
from tests.faults.kit import PY, python_env

CASES: dict[str, tuple[str, Any, str]] = {
    "unknown_key": ("health_chek_interval", 30, "did you mean 'health_check_interval'"),
    "unknown_key_far": ("frobnicate", True, "unknown key"),
    "negative_interval": ("health_check_interval", -30, "must be greater than 0"),
    "negative_freeze_threshold": ("orchestrator_freeze_threshold", -1, "greater than 0"),
    "negative_backoff": ("respawn_backoff_base", -5, "must not be negative"),
    "zero_heartbeat": ("heartbeat_interval", 0, "must be greater than 0"),
    "attempts_as_words": ("max_respawn_attempts", "three", "expected a number, got 'three'"),
    "attempts_as_bool": ("max_respawn_attempts", True, "expected a number"),
    "attempts_fractional": ("max_respawn_attempts", 2.5, "whole number"),
    "nan_interval": ("health_check_interval", float("nan"), "finite"),
    "bad_priority": ("bug_priority_mapping", {"ImportError": "Urgent"}, "priority must be one of"),
    "command_not_a_command": ("orchestrator_restart_command", 42, "expected a command"),
}


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, float) and value != value:
        return "nan"
    if isinstance(value, dict):
        return "{ " + ", ".join(f'{k} = "{v}"' for k, v in value.items()) + " }"
    return str(value)


def _touched(data: Path) -> list[str]:
    return sorted(str(p.relative_to(data)) for p in data.rglob("*"))


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    return tmp_path / "a-command-ran"


def _with_commands(marker: Path) -> dict[str, Any]:
    touch = ["/bin/sh", "-c", f"touch {marker}"]
    return {"notify_command": touch, "bug_command": touch, "orchestrator_restart_command": touch}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_value_from_api_dict_names_key_before_anything_runs(
    case: str, data_dir: Path, marker: Path
) -> None:
    key, value, words = CASES[case]
    cfg = {"data_dir": str(data_dir), **_with_commands(marker), key: value}
    with pytest.raises(ConfigError) as err:
        OrchestratorHealthMonitor(cfg)
    assert err.value.key == key
    assert repr(key) in str(err.value) and words in str(err.value)
    assert _touched(data_dir) == []
    assert not marker.exists()


@pytest.mark.parametrize("case", ["unknown_key", "negative_interval", "attempts_as_words"])
@pytest.mark.parametrize("where", ["ohm.toml", "pyproject.toml", "explicit_file"])
def test_bad_value_from_a_file_names_key_and_file(
    case: str, where: str, tmp_path: Path, data_dir: Path
) -> None:
    key, value, words = CASES[case]
    body = f'data_dir = "{data_dir}"\n{key} = {_toml_value(value)}\n'
    if where == "pyproject.toml":
        path = tmp_path / "pyproject.toml"
        path.write_text('[project]\nname = "x"\n\n[tool.ohm]\n' + body)
        source: str | None = None
    elif where == "ohm.toml":
        path = tmp_path / "ohm.toml"
        path.write_text(body)
        source = None
    else:
        path = tmp_path / "conf" / "watch.toml"
        path.parent.mkdir()
        path.write_text(body)
        source = str(path)
    with pytest.raises(ConfigError) as err:
        load_config(source)  # cwd is tmp_path: the auto-found files are there
    assert err.value.key == key and words in str(err.value)
    assert path.name in str(err.value)
    with pytest.raises(ConfigError):
        OrchestratorHealthMonitor(source)
    assert _touched(data_dir) == []


@pytest.mark.parametrize("command", ["check", "watch"])
def test_cli_refuses_a_bad_config_before_it_starts(
    command: str, tmp_path: Path, data_dir: Path, marker: Path
) -> None:
    conf = tmp_path / "bad.toml"
    conf.write_text(
        f'max_respawn_attempts = "three"\nnotify_command = ["/bin/sh", "-c", "touch {marker}"]\n'
    )
    out = subprocess.run(
        [PY, "-m", "ohm_tui", command, "--config", str(conf), "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        env=python_env(),
        timeout=30,
    )
    assert out.returncode in (2, 3), (out.returncode, out.stdout, out.stderr)
    assert "max_respawn_attempts" in out.stderr and "three" in out.stderr
    assert "Traceback" not in out.stderr
    assert _touched(data_dir) == []
    assert not marker.exists()
