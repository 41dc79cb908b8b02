"""The console's pure pieces: sanitizing, log following, header packing, small rules."""

from __future__ import annotations

import time

from ohm_tui.engine.model import AgentView, CrashRow, HealthReport, Issue, Snapshot
from ohm_tui.tui import text
from ohm_tui.tui.agents_panel import matches, status_label
from ohm_tui.tui.header import HeaderState, chips, max_lines, pack
from ohm_tui.tui.screens.agent_detail import fresh_part
from ohm_tui.tui.screens.bug_detail import shifted_priority
from ohm_tui.tui.timeline_panel import action_text
from tests.tui.conftest import EVIL_LINE


def agent(status: str = "running", **kw: object) -> AgentView:
    values: dict[str, object] = {
        "key": "10@1",
        "pid": 10,
        "agent_type": "architect",
        "task_id": "spec-20",
        "status": status,
        "source": "real",
        "started_at": time.time() - 60,
        "cpu_percent": 1.0,
        "rss_bytes": 1 << 20,
        "respawns": 1,
        "max_respawns": 3,
        "next_respawn_at": None,
        "last_log_line": None,
        "command_text": "run",
        "cwd": None,
        "log_file": None,
    }
    values.update(kw)
    return AgentView(**values)  # type: ignore[arg-type]


def crash(**kw: object) -> CrashRow:
    values: dict[str, object] = {
        "crash_id": 1,
        "crashed_at": time.time(),
        "agent_key": "10@1",
        "agent_pid": 10,
        "agent_type": "architect",
        "task_id": "spec-20",
        "exit_code": 1,
        "error_type": "ImportError",
        "error_message": "boom",
        "stack_trace": None,
        "root_cause": None,
        "related_files": [],
        "fingerprint": None,
        "log_excerpt": None,
        "log_file": None,
        "command_text": None,
        "action_taken": None,
        "respawned": False,
        "bug_reported": False,
        "bug_number": None,
    }
    values.update(kw)
    return CrashRow(**values)  # type: ignore[arg-type]


def test_literal_keeps_markup_as_text_and_drops_every_escape() -> None:
    shown = text.literal(EVIL_LINE)
    assert shown.plain == "[bold red]x[/] [link=http://e.vil]y[/link] red"
    assert shown.spans == []  # nothing styled, nothing linked
    for nasty in ("\x1b[2J", "\x1b]8;;http://e.vil\x1b\\", "\x9b31m", "\x07", "\u202e", "\x00"):
        assert text.clean(f"a{nasty}b") == "ab", repr(nasty)
    assert text.clean("tab\tand\nnewline") == "tab\tand\nnewline"
    assert text.literal("a\nb\nc", max_len=10).plain == "a"
    assert text.literal("x" * 50, max_len=10).plain == "x" * 9 + "…"


def test_log_message_drops_the_logging_prefix() -> None:
    line = "2025-10-19 19:43:20,588 - agents.architect - ERROR - cannot import"
    assert text.log_message(line) == "ERROR - cannot import"
    assert text.log_message("no prefix here") == "no prefix here"


def test_humanize_helpers() -> None:
    assert text.ago(time.time() - 120) == "2 minutes ago"
    assert text.ago(None) == "-"  # unknown, as in the CLI (one formatter, engine/fmt.py)
    assert text.size(None) == "-" and text.size(1536) == "1.5 KiB"
    assert text.rate(None) == "n/a" and text.rate(0.5) == "50%"


def test_fresh_part_follows_a_sliding_tail() -> None:
    assert fresh_part("a\nb\n", "a\nb\nc\n") == "c\n"
    assert fresh_part("a\nb\n", "a\nb\n") == ""
    # The byte window slid: the old end is found inside the new text.
    old = "".join(f"line {n}\n" for n in range(100))
    new = "".join(f"line {n}\n" for n in range(50, 120))
    assert fresh_part(old, new) == "".join(f"line {n}\n" for n in range(100, 120))
    # Rotated or truncated: no overlap, so the caller refills.
    assert fresh_part("old stuff\n", "brand new\n") is None
    # A repeated line does not fool it into skipping new text.
    assert fresh_part("x\nx\n", "x\nx\nx\n") == "x\n"


def test_header_packs_into_two_lines_at_80_columns() -> None:
    report = HealthReport("critical", [], 3, 12, 0.5, 4000.0, time.time())
    snap = Snapshot(report, [], [], [], [], [0] * 36, 600, 2, True, True, False)
    state = HeaderState(snapshot=snap, paused=True, read_only=True, freeze_threshold=300)
    content = pack(chips(state), 78)
    lines = content.plain.splitlines()
    assert 1 <= len(lines) <= 2
    assert all(len(line) <= 78 for line in lines)
    plain = content.plain
    for word in ("CRITICAL", "(frozen)", "12 crashes/h", "2 open bugs", "PAUSED", "READ-ONLY"):
        assert word in plain  # words, not colour alone
    assert max_lines(state) == 2
    # An engine error gets a third line at most, and is cut rather than wrapped.
    state.errors = ["disk full " * 50]
    lines = pack(chips(state), 78, max_lines(state)).plain.splitlines()
    assert len(lines) == 3 and all(len(line) <= 78 for line in lines)
    assert lines[2].startswith("error: disk full") and lines[2].endswith("…")


def test_status_filter_priority_and_action_rules() -> None:
    now = time.time()
    assert status_label(agent("respawning", next_respawn_at=now + 4.2), now) == "respawning in 4s"
    assert status_label(agent("given_up"), now) == "given up"
    assert matches(agent(), "ARCH", now) and matches(agent(), "spec-2", now)
    assert matches(agent("given_up"), "given up", now) and not matches(agent(), "zombie", now)
    assert shifted_priority("High", -1) == "Critical"
    assert shifted_priority("Critical", -1) == "Critical"
    assert shifted_priority("Low", 1) == "Low"
    assert action_text(crash(action_taken="respawned 2/3")) == "respawned 2/3"
    assert action_text(crash(action_taken="gave up", bug_number=4)) == "gave up, bug BUG-004"
    assert action_text(crash()) == "-"


def test_rows_with_equal_signatures_show_the_same_text() -> None:
    """The agents table reuses a row while its signature is unchanged: that is
    only right if an equal signature always means equal shown text."""
    from ohm_tui.engine.model import AgentView
    from ohm_tui.tui import text
    from ohm_tui.tui.agents_panel import shown_signature, uptime

    def view(rss: int, cpu: float, started: float) -> AgentView:
        return AgentView(
            key="1@1", pid=1, agent_type="architect", task_id="spec-20", status="running",
            source="real", started_at=started, cpu_percent=cpu, rss_bytes=rss, respawns=0,
            max_respawns=3, next_respawn_at=None, last_log_line="x", command_text="x",
            cwd=None, log_file=None,
        )  # fmt: skip

    now = 2_000_000_000.0
    seen: dict[tuple[object, ...], tuple[str, str, str]] = {}
    for rss in range(10 << 20, (10 << 20) + 3_000_000, 7_919):  # ~380 sizes around 10 MiB
        for cpu in (0.0, 0.04, 0.05, 0.06, 12.34, 12.36):
            for age in (
                5.0,
                59.0,
                61.0,
                119.0,
                121.0,
                3599.0,
                3601.0,
                5399.0,
                5401.0,
                7199.0,
                7201.0,
                90_000.0,
                129_600.0,
                172_801.0,
            ):
                agent = view(rss, cpu, now - age)
                up = uptime(agent, now)
                shown = (text.size(rss), text.percent(cpu), text.duration(up))
                sig = shown_signature(agent, now)
                assert seen.setdefault(sig, shown) == shown, (sig, shown, seen[sig])


def _header_lines(crashes: int, bugs: int, poll: float, rate: float | None) -> list[str]:
    issues = [Issue("crash_storm", "critical", "x", details={"count": crashes})]
    report = HealthReport("critical", issues, 3, crashes, rate, poll, time.time())
    snap = Snapshot(report, [], [], [], [], [0] * 36, 600, bugs, True, True, False)
    return pack(chips(HeaderState(snapshot=snap, auto_fix=True)), 80).plain.splitlines()


def test_header_items_keep_their_place_as_values_change_width() -> None:
    """Numbers growing from one digit to two (or ages from seconds to minutes) move
    no item to another line and no item sideways; the cause is named at 80 columns."""
    variants = [
        _header_lines(11, 1, 5.0, 1.0),
        _header_lines(99, 12, 250.0, 0.5),
        _header_lines(12, 0, 42.0, None),
    ]
    assert variants[0][0].startswith(" CRITICAL  · crash storm: 11/h")
    for item in ("crashes/h", "open bug", "respawn ok", "active", "auto-fix ON"):
        rows = {n for lines in variants for n, line in enumerate(lines) if item in line}
        assert len(rows) == 1, f"{item!r} moved to another line: {variants}"
    for n in (0, 1):  # every item starts where it started: the separators stay put
        seps = {tuple(i for i in range(80) if lines[n][i : i + 3] == " · ") for lines in variants}
        assert len(seps) == 1, f"line {n + 1} items moved sideways: {variants}"
    for lines in variants:
        assert len(lines) == 2 and all(len(line) <= 80 for line in lines)
