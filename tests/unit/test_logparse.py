"""Log reading and crash parsing, on tracebacks that real Python processes print."""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ohm_tui.engine.model import CrashInfo
from ohm_tui.engine.sources import logparse, logtail

SKILL_CAUSE = "Missing SkillNames export in coffee_maker/autonomous/skill_loader.py"


def write_tree(root: Path, files: dict[str, str]) -> Path:
    for rel, body in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(textwrap.dedent(body))
    return root


def run_to_log(args: list[str], cwd: Path, log: Path) -> Path:
    """Run a real Python process with stdout+stderr appended to ``log``; it must fail."""
    with log.open("ab") as out:
        proc = subprocess.run(
            [sys.executable, *args],
            cwd=cwd,
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=20,
            env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPATH": str(cwd)},
        )
    assert proc.returncode != 0
    return log


SKILL_PROJECT = {
    "coffee_maker/__init__.py": "",
    "coffee_maker/autonomous/__init__.py": "",
    "coffee_maker/autonomous/skill_loader.py": """
        class SkillLoader:
            pass
    """,
    "coffee_maker/autonomous/agent.py": """
        from coffee_maker.autonomous.skill_loader import SkillNames

        def main():
            return SkillNames
    """,
    "run_agent.py": """
        import os, sys
        print(f"agent pid {os.getpid()} starting", flush=True)
        import coffee_maker.autonomous.agent
    """,
}


@pytest.fixture
def skill_project(tmp_path: Path) -> Path:
    return write_tree(tmp_path / "proj", SKILL_PROJECT)


def test_skillnames_import_error(skill_project: Path) -> None:
    log = run_to_log(["run_agent.py"], skill_project, skill_project / "agent.log")
    text = logtail.tail_text(log)
    info = logparse.parse_crash(text, project_root=str(skill_project))

    assert info.error_type == "ImportError"
    assert info.error_message is not None and "SkillNames" in info.error_message
    assert info.root_cause == SKILL_CAUSE
    assert info.related_files == ["run_agent.py", "coffee_maker/autonomous/agent.py"]
    assert info.stack_trace is not None
    assert info.stack_trace.startswith("Traceback (most recent call last):")
    assert info.stack_trace.rstrip().endswith("skill_loader.py)")
    assert "starting" not in info.stack_trace  # the log line before is not the trace
    assert info.fingerprint is not None and len(info.fingerprint) == 16
    assert info.log_excerpt is not None and "agent pid" in info.log_excerpt

    # Without a project root the cause is the same (derived from the dotted module).
    plain = logparse.parse_crash(text)
    assert plain.root_cause == SKILL_CAUSE
    assert plain.related_files[0] == str(skill_project / "run_agent.py")
    assert plain.fingerprint == info.fingerprint


def test_same_crash_same_fingerprint_across_pids_and_checkouts(tmp_path: Path) -> None:
    a = write_tree(tmp_path / "a" / "checkout-1", SKILL_PROJECT)
    b = write_tree(tmp_path / "elsewhere" / "deeper" / "checkout-2", SKILL_PROJECT)
    infos = [
        logparse.parse_crash(logtail.tail_text(run_to_log(["run_agent.py"], d, d / name)))
        for d, name in ((a, "1.log"), (a, "2.log"), (b, "3.log"))
    ]
    texts = [(d / n).read_text() for d, n in ((a, "1.log"), (a, "2.log"), (b, "3.log"))]
    assert len({t.splitlines()[0] for t in texts}) == 3  # three different PIDs printed
    assert len({i.fingerprint for i in infos}) == 1
    assert {i.root_cause for i in infos} == {SKILL_CAUSE}


ERRORS_PROJECT = {
    "agents/__init__.py": "",
    "agents/netlib/__init__.py": "",
    "agents/netlib/exceptions.py": """
        class ConnectionError(Exception):
            pass
    """,
    "agents/work.py": """
        import os, sys

        def fetch():
            from agents.netlib.exceptions import ConnectionError
            raise ConnectionError(f"cannot reach 10.0.0.{os.getpid() % 250}:8080")

        def load():
            import some_module_that_is_not_there_xyz

        def run():
            raise RuntimeError(f"worker {os.getpid()} failed at {hex(id(object()))}")

        def wait():
            raise TimeoutError("agent did not answer within 30 s")

        def chained():
            try:
                {}["config"]
            except KeyError:
                raise RuntimeError("could not start")

        def caused():
            try:
                int("x")
            except ValueError as exc:
                raise RuntimeError("bad setting") from exc

        if __name__ == "__main__":
            globals()[sys.argv[1]]()
    """,
}


@pytest.fixture
def errors_project(tmp_path: Path) -> Path:
    return write_tree(tmp_path / "proj", ERRORS_PROJECT)


def crash(project: Path, func: str) -> CrashInfo:
    log = run_to_log(["-m", "agents.work", func], project, project / f"{func}.log")
    return logparse.parse_crash(logtail.tail_text(log), project_root=str(project))


def test_error_kinds_and_distinct_fingerprints(errors_project: Path) -> None:
    fetch = crash(errors_project, "fetch")
    assert fetch.error_type == "agents.netlib.exceptions.ConnectionError"
    assert fetch.error_message is not None and fetch.error_message.startswith("cannot reach")
    assert fetch.root_cause is not None and "fetch" in fetch.root_cause

    load = crash(errors_project, "load")
    assert load.error_type == "ModuleNotFoundError"
    assert load.root_cause == (
        "Module some_module_that_is_not_there_xyz is not installed or not on sys.path"
    )

    run = crash(errors_project, "run")
    assert run.error_type == "RuntimeError"
    assert run.root_cause is not None
    assert run.root_cause.startswith("RuntimeError in run (agents/work.py:")
    assert run.related_files == ["agents/work.py"]

    wait = crash(errors_project, "wait")
    assert wait.error_type == "TimeoutError"
    assert wait.root_cause is not None and wait.root_cause.startswith("Timed out in wait")

    prints = [i.fingerprint for i in (fetch, load, run, wait)]
    assert None not in prints
    assert len(set(prints)) == 4

    # The same RuntimeError again: different PID and address, same group.
    assert crash(errors_project, "run").fingerprint == run.fingerprint


@pytest.mark.parametrize(
    ("func", "separator", "first"),
    [
        ("chained", "During handling of the above exception", "KeyError: 'config'"),
        ("caused", "The above exception was the direct cause", "ValueError: invalid literal"),
    ],
)
def test_chained_exceptions_keep_the_whole_chain(
    errors_project: Path, func: str, separator: str, first: str
) -> None:
    info = crash(errors_project, func)
    assert info.error_type == "RuntimeError"
    assert info.stack_trace is not None
    assert separator in info.stack_trace
    assert first in info.stack_trace
    assert info.stack_trace.count("Traceback (most recent call last):") == 2
    assert info.stack_trace.rstrip().splitlines()[-1].startswith("RuntimeError: ")


def test_traceback_cut_anywhere_never_raises(skill_project: Path) -> None:
    text = run_to_log(["run_agent.py"], skill_project, skill_project / "a.log").read_text()
    start = text.index("Traceback")
    for cut in range(start, len(text), 3):
        info = logparse.parse_crash(text[:cut])
        assert isinstance(info, CrashInfo)
    # Cut inside the last frame: the frames survive, the exception line does not.
    cut = text.index("from coffee_maker.autonomous.skill_loader")
    info = logparse.parse_crash(text[:cut], project_root=str(skill_project))
    assert info.error_type is None
    assert info.related_files == ["run_agent.py", "coffee_maker/autonomous/agent.py"]
    assert info.root_cause is not None and "cut short" in info.root_cause
    assert info.fingerprint is not None


def test_last_traceback_wins(errors_project: Path) -> None:
    log = errors_project / "both.log"
    run_to_log(["-m", "agents.work", "load"], errors_project, log)
    run_to_log(["-m", "agents.work", "wait"], errors_project, log)
    info = logparse.parse_crash(logtail.tail_text(log))
    assert info.error_type == "TimeoutError"
    assert info.stack_trace is not None and "ModuleNotFoundError" not in info.stack_trace


ROOT_CAUSE_SCRIPT = r"""
import os, sys, traceback, pathlib
base = pathlib.Path(sys.argv[1])
(base / "badsyntax.py").write_text("x = 1\ndef broken(:\n    pass\n")
sys.path.insert(0, str(base))

class Widget:
    pass

def needs(a, b):
    return a + b

cases = {
    "attr_module": lambda: os.no_such_function_xyz,
    "attr_object": lambda: Widget().colour,
    "key": lambda: {}["timeout"],
    "file": lambda: open(base / "missing" / "settings.toml"),
    "perm": lambda: open(base / "locked.txt"),
    "name": lambda: undefined_thing_xyz,
    "missing_arg": lambda: needs(1),
    "syntax": lambda: __import__("badsyntax"),
    "refused": lambda: __import__("socket").create_connection(("127.0.0.1", 9), timeout=2),
}
for name, fn in cases.items():
    print("=== " + name, file=sys.stderr, flush=True)
    try:
        fn()
    except BaseException:
        traceback.print_exc()
    sys.stderr.flush()
"""


@pytest.fixture(scope="module")
def root_cause_logs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    base = tmp_path_factory.mktemp("rc")
    locked = base / "locked.txt"
    locked.write_text("secret")
    locked.chmod(0)
    script = base / "cases.py"
    script.write_text(ROOT_CAUSE_SCRIPT)
    proc = subprocess.run(
        [sys.executable, str(script), str(base)], capture_output=True, text=True, timeout=20
    )
    out: dict[str, str] = {}
    for chunk in proc.stderr.split("=== ")[1:]:
        name, _, body = chunk.partition("\n")
        out[name.strip()] = body
    return out


@pytest.mark.parametrize(
    ("case", "etype", "expected"),
    [
        ("attr_module", "AttributeError", "Missing attribute no_such_function_xyz in module os"),
        ("attr_object", "AttributeError", "Widget object has no attribute colour in <lambda>"),
        ("key", "KeyError", "Missing key 'timeout' in <lambda>"),
        ("file", "FileNotFoundError", "Missing file {base}/missing/settings.toml"),
        ("name", "NameError", "Undefined name undefined_thing_xyz in <lambda>"),
        ("missing_arg", "TypeError", "Call to needs() is missing argument b in <lambda>"),
        ("syntax", "SyntaxError", "Syntax error in "),
        ("refused", "ConnectionRefusedError", "Connection refused in <lambda>"),
    ],
)
def test_root_cause_shapes(
    root_cause_logs: dict[str, str], case: str, etype: str, expected: str
) -> None:
    info = logparse.parse_crash(root_cause_logs[case])
    assert info.error_type == etype
    assert info.root_cause is not None
    frames = logparse.frames_of(root_cause_logs[case])
    assert logparse.root_cause(info.error_type, info.error_message, frames) == info.root_cause
    if "{base}" in expected:
        quoted = info.error_message.split(": ", 1)[1] if info.error_message else ""
        base = quoted.strip("'").rsplit("/missing/", 1)[0]
        expected = expected.format(base=base)
        assert info.root_cause == expected
    else:
        assert info.root_cause.startswith(expected), info.root_cause
    if case == "syntax":
        assert "badsyntax.py line 2" in info.root_cause


def test_permission_error_root_cause(root_cause_logs: dict[str, str], tmp_path: Path) -> None:
    text = root_cause_logs["perm"]
    if os.geteuid() == 0:
        # Root opens mode-000 files, so really fail as "nobody" with the system Python
        # (the venv's interpreter lives under /root, which nobody may not enter).
        python = "/usr/bin/python3"
        if not os.access(python, os.X_OK):
            pytest.skip("running as root and no system python3 to drop privileges with")
        locked = tmp_path / "locked.txt"
        locked.write_text("secret")
        locked.chmod(0)
        proc = subprocess.run(
            [python, "-c", "import sys; open(sys.argv[1])", str(locked)],
            capture_output=True,
            text=True,
            timeout=20,
            user=65534,
            group=65534,
            extra_groups=[],
            cwd="/",
        )
        text = proc.stderr
    info = logparse.parse_crash(text)
    assert info.error_type == "PermissionError"
    assert info.root_cause is not None and info.root_cause.startswith("Permission denied on /")


@pytest.mark.parametrize(
    ("etype", "message", "expected"),
    [
        (
            "ImportError",
            "cannot import name 'SkillNames' from 'coffee_maker.autonomous.skill_loader' "
            "(/x/coffee_maker/autonomous/skill_loader.py)",
            SKILL_CAUSE,
        ),
        (
            "ImportError",
            "cannot import name 'Thing' from 'pkg' (/srv/app/pkg/__init__.py)",
            "Missing Thing export in pkg/__init__.py",
        ),
        (
            "ImportError",
            "cannot import name 'A' from partially initialized module 'pkg.a' "
            "(most likely due to a circular import) (/srv/pkg/a.py)",
            "Circular import: A not yet defined in pkg/a.py",
        ),
        (
            "ModuleNotFoundError",
            "No module named 'yaml'",
            "Module yaml is not installed or not on sys.path",
        ),
        (
            "FileNotFoundError",
            "[Errno 2] No such file or directory: 'data/roadmap.md'",
            "Missing file data/roadmap.md",
        ),
        (
            "PermissionError",
            "[Errno 13] Permission denied: '/etc/shadow'",
            "Permission denied on /etc/shadow",
        ),
        (
            "TypeError",
            "Agent.__init__() missing 2 required positional arguments: 'name' and 'task'",
            "Call to Agent.__init__() is missing arguments name and task",
        ),
    ],
)
def test_root_cause_without_frames(etype: str, message: str, expected: str) -> None:
    assert logparse.root_cause(etype, message, []) == expected


def test_root_cause_generic_uses_last_project_frame() -> None:
    frames = [
        ("/srv/app/main.py", 10, "<module>"),
        ("/srv/app/agents/architect.py", 42, "create_spec"),
        ("/usr/lib/python3.11/json/decoder.py", 337, "decode"),
    ]
    got = logparse.root_cause("ValueError", "bad spec", frames)
    assert got == "ValueError in create_spec (agents/architect.py:42): bad spec"
    assert logparse.root_cause(None, None, []) is None


def test_fingerprint_without_frames_normalises_message() -> None:
    a = logparse.fingerprint("ExitCode", [], "worker 1234 died at 0xdeadbeef in '/tmp/a/x.py'")
    b = logparse.fingerprint("ExitCode", [], "worker 98 died at 0x1f in '/var/tmp/zz/q.py'")
    c = logparse.fingerprint("ProcessGone", [], "worker 98 died at 0x1f in '/var/tmp/zz/q.py'")
    d = logparse.fingerprint("ExitCode", [], "disk full")
    assert a == b
    assert len({a, c, d}) == 3


def test_fingerprint_ignores_line_numbers_and_library_frames() -> None:
    one = [("/a/p/main.py", 3, "<module>"), ("/a/p/pkg/mod.py", 10, "go")]
    moved = [("/b/q/main.py", 4, "<module>"), ("/b/q/pkg/mod.py", 99, "go")]
    lib = [*one, ("/usr/lib/python3.11/socket.py", 836, "create_connection")]
    other_func = [("/a/p/main.py", 3, "<module>"), ("/a/p/pkg/mod.py", 10, "stop")]
    f = logparse.fingerprint
    assert f("E", one) == f("E", moved) == f("E", lib)
    assert f("E", one) != f("E", other_func)
    assert f("E", one) != f("F", one)


def test_no_traceback_uses_last_error_line() -> None:
    info = logparse.parse_crash("starting\nworking\nValueError: budget exceeded\n")
    assert (info.error_type, info.error_message) == ("ValueError", "budget exceeded")
    assert info.fingerprint is not None

    rec = "2025-10-19 19:43:20,588 - coffee_maker.orchestrator - ERROR - Agent failed: db down"
    info = logparse.parse_crash(f"2025-10-19 19:43:19,001 - x - INFO - hi\n{rec}\n")
    assert info.error_type == "ERROR"
    assert info.error_message == "Agent failed: db down"

    quiet = logparse.parse_crash("just some output\nNote: nothing wrong\n")
    assert quiet.error_type is None and quiet.fingerprint is None
    assert quiet.log_excerpt == "just some output\nNote: nothing wrong"

    assert logparse.parse_crash("") == CrashInfo()
    assert logparse.parse_crash("\n\n  \n") == CrashInfo()


def test_real_logging_error_lines(tmp_path: Path) -> None:
    script = textwrap.dedent(
        """
        import logging, sys
        logging.basicConfig(stream=sys.stdout,
            format="%(asctime)s - %(name)s - %(levelname)s - %(message)s", level=logging.DEBUG)
        log = logging.getLogger("coffee_maker.orchestrator")
        log.info("cycle start")
        log.warning("slow cycle")
        log.error("spawn failed for spec-20")
        log.critical("state file unreadable")
        try:
            1 / 0
        except ZeroDivisionError:
            log.exception("loop crashed")
        print("ERROR: plain prefix")
        print("ERRORS are not a prefix")
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=20
    ).stdout
    lines = logparse.error_lines(out)
    assert len(lines) == 5
    assert lines[0].endswith(" - ERROR - spawn failed for spec-20")
    assert lines[1].endswith(" - CRITICAL - state file unreadable")
    assert lines[2].endswith(" - ERROR - loop crashed")
    assert lines[3] == "Traceback (most recent call last):"
    assert lines[4] == "ERROR: plain prefix"
    assert logparse.has_traceback(out)
    assert not logparse.has_traceback(out.replace("Traceback", "Trace"))
    info = logparse.parse_crash(out)
    assert info.error_type == "ZeroDivisionError"


def test_non_utf8_nul_and_hostile_bytes(tmp_path: Path, skill_project: Path) -> None:
    log = skill_project / "dirty.log"
    log.write_bytes(b"\xff\xfe\x00garbage \x80\x81 \xc3\x28\n\x1b]52;c;ZXZpbA==\x07\n")
    run_to_log(["run_agent.py"], skill_project, log)
    with log.open("ab") as f:
        f.write(b"\x00\x00\xfe trailing junk after the crash \x9b31m\n")
    text = logtail.tail_text(log)
    assert "\ufffd" in text
    info = logparse.parse_crash(text)
    assert info.error_type == "ImportError"
    assert info.root_cause == SKILL_CAUSE
    assert info.log_excerpt is not None
    assert "\x00" not in info.log_excerpt and "\x1b" not in info.log_excerpt

    rng = random.Random(1234)
    for _ in range(50):
        junk = bytes(rng.randrange(256) for _ in range(2000)).decode("utf-8", "replace")
        logparse.parse_crash(junk + "\nTraceback (most recent call last):\n" + junk)
        logparse.error_lines(junk)
        logtail.last_line(junk)
        logparse.frames_of(junk)


def test_five_megabyte_line(tmp_path: Path, skill_project: Path) -> None:
    log = skill_project / "huge.log"
    log.write_text("x" * 5_000_000 + "\n")
    run_to_log(["run_agent.py"], skill_project, log)
    text = logtail.tail_text(log, 65536)
    assert len(text.encode()) <= 65536
    assert logparse.parse_crash(text).root_cause == SKILL_CAUSE

    only = tmp_path / "one-line.log"
    only.write_text("ERROR: " + "y" * 5_000_000)
    whole = only.read_text()
    assert logtail.last_line(whole) == "ERROR: " + "y" * 192 + "…"
    lines = logparse.error_lines(whole)
    assert len(lines) == 1 and len(lines[0]) <= 4000
    info = logparse.parse_crash(whole)
    assert info.error_type == "ERROR"
    assert info.error_message is not None and len(info.error_message) <= 2000
    tail = logtail.tail_text(only, 1000)
    assert tail == "y" * 1000  # no newline anywhere: the partial line is all there is
    only.write_text("w" * 5_000_000 + "\n")
    assert logtail.tail_text(only, 100) == "w" * 99 + "\n"
    assert logtail.last_line(logtail.tail_text(only, 100)) == "w" * 99


def test_tail_of_a_large_file_reads_only_the_tail(tmp_path: Path) -> None:
    big = tmp_path / "big.log"
    with big.open("wb") as f:
        f.truncate(1024 * 1024 * 1024)  # 1 GB sparse: reading it all would be obvious
        f.seek(0, os.SEEK_END)
        f.write(b"line one\nline two\nERROR: last words\n")
    data = logtail.tail_bytes(big, 4096)
    assert len(data) == 4096
    assert data.endswith(b"ERROR: last words\n")
    assert logtail.tail_text(big, 25) == "ERROR: last words\n"  # cut first line dropped
    # Starting right after a newline, the first line is whole and kept.
    assert logtail.tail_text(big, 27) == "line two\nERROR: last words\n"


def test_tail_of_nothing(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for p in (None, tmp_path / "missing.log", tmp_path, fifo, "bad\0path"):
        assert logtail.tail_bytes(p) == b""
        assert logtail.tail_text(p) == ""
        assert logtail.read_new(p, 10) == (0, "")
    small = tmp_path / "small.log"
    small.write_text("a\nb\n")
    assert logtail.tail_bytes(small, 0) == b""
    assert logtail.tail_text(small, 1000) == "a\nb\n"


def test_read_new_follows_appends_truncation_rotation_deletion(tmp_path: Path) -> None:
    log = tmp_path / "agent.log"
    log.write_text("old line\n")
    offset = log.stat().st_size
    assert logtail.read_new(log, offset) == (offset, "")

    with log.open("a") as f:
        f.write("2025-10-19 19:43:20,588 - a - ERROR - first\npartial ERR")
    offset, text = logtail.read_new(log, offset)
    assert text == "2025-10-19 19:43:20,588 - a - ERROR - first\n"  # partial line waits
    with log.open("a") as f:
        f.write("OR still\n")
    offset, text = logtail.read_new(log, offset)
    assert text == "partial ERROR still\n"
    assert offset == log.stat().st_size

    # Truncated in place (copytruncate): start over from 0.
    log.write_text("ERROR: after truncate\n")
    offset, text = logtail.read_new(log, offset)
    assert text == "ERROR: after truncate\n"
    assert logparse.error_lines(text) == ["ERROR: after truncate"]

    # Rotated: renamed away, a new smaller file in its place.
    log.rename(tmp_path / "agent.log.1")
    log.write_text("new\n")
    offset, text = logtail.read_new(log, offset)
    assert (offset, text) == (4, "new\n")

    # Much more appended than max_bytes: only the last max_bytes, whole lines.
    with log.open("a") as f:
        for i in range(10_000):
            f.write(f"line {i}\n")
    offset, text = logtail.read_new(log, offset, max_bytes=1000)
    assert offset == log.stat().st_size
    assert len(text.encode()) <= 1000
    assert text.endswith("line 9999\n")
    assert text.startswith("line ")  # the cut first line was dropped

    # Shrunk far below the offset and still bigger than max_bytes: bounded tail.
    log.write_text("z" * 5000 + "\nERROR: tail\n")
    offset, text = logtail.read_new(log, offset + 10**9, max_bytes=100)
    assert text == "ERROR: tail\n" and offset == log.stat().st_size

    log.unlink()
    assert logtail.read_new(log, offset) == (0, "")


def test_read_new_one_huge_line_does_not_stall(tmp_path: Path) -> None:
    log = tmp_path / "agent.log"
    log.write_text("q" * 3000)
    offset, text = logtail.read_new(log, 0, max_bytes=1000)
    assert offset == 3000 and text == "q" * 1000


def test_sanitize_makes_terminal_sequences_inert() -> None:
    hostile = (
        "\x1b[31mred\x1b[0m "
        "\x1b]52;c;ZWNobyBwd25lZA==\x07"  # OSC 52: write the clipboard
        "\x1b]8;;https://evil.example\x1b\\click\x1b]8;;\x1b\\ "  # OSC 8 link
        "\x1bP1$qm\x1b\\"  # DCS
        "\x9b2J\x9d0;title\x9c"  # C1 CSI / OSC
        "\x1b(B\x1b7\x1b8\x1bc"  # charset, save/restore, reset
        "\x08\x07\x00\x7f"
        "\u202egnp.exe\u202c "
        "[bold]literal[/] [link=https://x]y[/link]\ttab\r\nline\rredraw\x1b]0;unterminated"
    )
    clean = logtail.sanitize(hostile)
    assert "\x1b" not in clean
    assert not any(0x80 <= ord(c) <= 0x9F for c in clean)
    assert not any(ord(c) < 32 and c not in "\n\t" for c in clean)
    assert "ZWNobyBwd25lZA" not in clean and "evil.example" not in clean
    assert "unterminated" not in clean
    assert "red click " in clean
    assert "[bold]literal[/] [link=https://x]y[/link]\ttab\nline\nredraw" in clean
    assert "\u202e" not in clean and "gnp.exe" in clean
    assert logtail.sanitize(clean) == clean
    assert logtail.sanitize("") == ""


def test_last_line() -> None:
    assert logtail.last_line("a\nb\n\n   \n") == "b"
    assert logtail.last_line("first\n\x1b[2K\x1b[1G\n") == "first"
    assert logtail.last_line("10%\r20%\r30%") == "30%"
    assert logtail.last_line("z" * 300, 10) == "z" * 9 + "…"
    assert logtail.last_line("") is None
    assert logtail.last_line("\n\x1b[0m\n") is None


def test_frames_of_handles_syntax_error_frames_and_groups() -> None:
    trace = (
        "  + Exception Group Traceback (most recent call last):\n"
        '  |   File "/p/a.py", line 3, in main\n'
        '  File "/p/b.py", line 7\n'
        '    File "<frozen importlib._bootstrap>", line 1, in _load\n'
    )
    assert logparse.frames_of(trace) == [
        ("/p/a.py", 3, "main"),
        ("/p/b.py", 7, ""),
        ("<frozen importlib._bootstrap>", 1, "_load"),
    ]
    assert logparse.frames_of("") == []


def test_copies_of_project_in_two_tmp_dirs_via_copytree(
    skill_project: Path, tmp_path: Path
) -> None:
    other = tmp_path / "copy-9876" / "proj"
    shutil.copytree(skill_project, other)
    a = logparse.parse_crash(
        run_to_log(["run_agent.py"], skill_project, skill_project / "a.log").read_text()
    )
    b = logparse.parse_crash(run_to_log(["run_agent.py"], other, other / "b.log").read_text())
    assert a.stack_trace != b.stack_trace  # the paths differ...
    assert a.fingerprint == b.fingerprint  # ...the group does not


def test_exception_group_from_a_task_group(tmp_path: Path) -> None:
    script = textwrap.dedent(
        """
        import asyncio

        async def fetch():
            raise ValueError("bad payload")

        async def store():
            raise OSError("disk full")

        async def main():
            async with asyncio.TaskGroup() as tg:
                tg.create_task(fetch())
                tg.create_task(store())

        asyncio.run(main())
        """
    )
    (tmp_path / "tg.py").write_text(script)
    log = run_to_log(["tg.py"], tmp_path, tmp_path / "tg.log")
    info = logparse.parse_crash(logtail.tail_text(log), project_root=str(tmp_path))
    assert info.error_type == "ExceptionGroup"
    assert info.error_message is not None
    assert "ValueError: bad payload" in info.error_message
    assert "OSError: disk full" in info.error_message
    assert info.related_files == ["tg.py"]
    assert info.stack_trace is not None
    assert info.stack_trace.startswith("  + Exception Group Traceback")
