"""Configuration: seed defaults, sources, and errors that name the key."""

from pathlib import Path

import pytest

from ohm_tui.engine.config import ConfigError, load_config


def test_seed_defaults() -> None:
    cfg = load_config({}, search_cwd=False)
    assert cfg.health_check_interval == 30
    assert cfg.max_respawn_attempts == 3
    assert cfg.orchestrator_freeze_threshold == 300
    assert cfg.crash_threshold_for_bug == 3
    assert cfg.bug_priority_mapping["ImportError"] == "High"
    assert cfg.bug_priority_mapping["RuntimeError"] == "Medium"
    assert cfg.bug_priority_mapping["TimeoutError"] == "Low"
    assert cfg.sound is False


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ({"max_respawn_attempts": "three"}, "max_respawn_attempts"),
        ({"health_check_interval": -1}, "health_check_interval"),
        ({"helth_check_interval": 5}, "helth_check_interval"),
        ({"bug_priority_mapping": {"ImportError": "Urgent"}}, "bug_priority_mapping"),
        ({"sound": "yes"}, "sound"),
        ({"bug_command": 42}, "bug_command"),
    ],
)
def test_bad_values_name_the_key(table: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(table, search_cwd=False)
    assert err.value.key == key
    assert key in str(err.value)


def test_ohm_toml_and_pyproject(tmp_path: Path) -> None:
    (tmp_path / "ohm.toml").write_text("max_respawn_attempts = 5\nheartbeat_log = 'hb.log'\n")
    cfg = load_config(tmp_path / "ohm.toml", data_dir=tmp_path / "d")
    assert cfg.max_respawn_attempts == 5
    assert cfg.heartbeat_log_path == tmp_path / "d" / "hb.log"
    (tmp_path / "pyproject.toml").write_text("[tool.ohm]\ncrash_threshold_for_bug = 2\n")
    assert load_config(tmp_path / "pyproject.toml").crash_threshold_for_bug == 2


def test_typo_in_file_names_key(tmp_path: Path) -> None:
    (tmp_path / "ohm.toml").write_text("max_respawn_atempts = 5\n")
    with pytest.raises(ConfigError, match="did you mean 'max_respawn_attempts'"):
        load_config(tmp_path / "ohm.toml")


def test_commands_are_argv(tmp_path: Path) -> None:
    cfg = load_config({"orchestrator_restart_command": "poetry run orchestrator start"})
    assert cfg.orchestrator_restart_command == ["poetry", "run", "orchestrator", "start"]


def test_cost_budget_per_hour(tmp_path: Path) -> None:
    assert load_config({}, search_cwd=False).cost_budget_per_hour is None  # no budget
    (tmp_path / "ohm.toml").write_text("cost_budget_per_hour = 5\n")
    assert load_config(tmp_path / "ohm.toml").cost_budget_per_hour == 5.0
    for bad in (0, -1.5, "5 dollars", True, float("nan")):
        with pytest.raises(ConfigError) as err:
            load_config({"cost_budget_per_hour": bad}, search_cwd=False)
        assert err.value.key == "cost_budget_per_hour"
