"""The commands an operator runs on a host: the fleet view shows them, never sends them.

Process control stays on each host (identity checks, leases and the operator's
own ssh credentials live there); the fleet's HTTP API is read-only by design.
"""

from __future__ import annotations

import shlex

from ohm_tui.fleet.hosts import Host


def remote_command(host: Host, *args: str) -> str:
    """``ssh orch-1 ohm respawn 14993``, every word quoted for a POSIX shell (twice:
    ssh hands the remote side one string, which its shell splits again)."""
    words = ["ohm", *args]
    if host.data_dir:
        words[1:1] = ["--data-dir", host.data_dir]
    remote = shlex.join(words)
    return (
        shlex.join(["ssh", host.ssh_target, remote])
        if _needs_outer(remote)
        else (f"ssh {shlex.quote(host.ssh_target)} {remote}")
    )


def _needs_outer(remote: str) -> bool:
    # Plain words read best unquoted; anything quoted is quoted again for ssh.
    return "'" in remote or '"' in remote


def respawn(host: Host, pid: int) -> str:
    return remote_command(host, "respawn", str(pid))


def stop(host: Host, pid: int) -> str:
    return remote_command(host, "stop", str(pid))


def clean_zombies(host: Host) -> str:
    return remote_command(host, "clean-zombies", "--dry-run")


def file_bug(host: Host, title: str, priority: str = "High") -> str:
    return remote_command(host, "bug", "file", "--title", title, "--priority", priority)
