"""The fleet's status rule and its inputs (no network needed)."""

from __future__ import annotations

import pytest

from ohm_tui.engine.model import AgentView
from ohm_tui.fleet import commands
from ohm_tui.fleet.hosts import FleetError, Host, check_url, hosts_from_urls
from ohm_tui.fleet.snapshot import EXIT_CODES, HostStatus, from_dict, worst

H, D, C, U = HostStatus.HEALTHY, HostStatus.DEGRADED, HostStatus.CRITICAL, HostStatus.UNREACHABLE


@pytest.mark.parametrize(
    ("statuses", "code"),
    [([H, H], 0), ([H, D], 1), ([D, U], 3), ([U, C], 2), ([H, C, D], 2), ([U], 3), ([], 3)],
)
def test_worst_critical_then_unknown_then_degraded(statuses: list[HostStatus], code: int) -> None:
    assert EXIT_CODES[worst(statuses)] == code


def test_models_from_a_newer_host_ignore_unknown_keys() -> None:
    doc = {
        "key": "1@2", "pid": 1, "agent_type": "a", "task_id": None, "status": "running",
        "source": "real", "started_at": 2.0, "cpu_percent": None, "rss_bytes": None,
        "respawns": 0, "max_respawns": 3, "next_respawn_at": None, "last_log_line": None,
        "command_text": "x", "cwd": None, "log_file": None, "added_in_v9": True,
    }  # fmt: skip
    assert from_dict(AgentView, doc).pid == 1


@pytest.mark.parametrize("url", ["ftp://x:1", "http://", "http://h:1/api", "http://u@h:1", "h:1"])
def test_bad_remote_urls_are_refused(url: str) -> None:
    with pytest.raises(FleetError):
        check_url(url)


def test_same_host_twice_is_refused() -> None:
    with pytest.raises(FleetError, match="twice"):
        hosts_from_urls(["http://h:1", "http://h:1/"])


def test_commands_are_quoted_for_the_remote_shell() -> None:
    host = Host("a", "http://orch-1:9464", data_dir="/srv/my data")
    assert commands.respawn(Host("a", "http://orch-1:9464"), 14993) == (
        "ssh orch-1 ohm respawn 14993"
    )
    cmd = commands.file_bug(host, "it's $(rm -rf /)")
    import shlex

    argv = shlex.split(cmd)
    assert argv[:2] == ["ssh", "orch-1"] and len(argv) == 3
    assert shlex.split(argv[2]) == [
        "ohm", "--data-dir", "/srv/my data", "bug", "file", "--title", "it's $(rm -rf /)",
        "--priority", "High",
    ]  # fmt: skip
