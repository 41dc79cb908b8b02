"""A fake AI agent for the demo orchestrator: it logs, works, and fails for real.

Every failure is a genuine Python failure, not a printed imitation, so that ohm's
log parsing, fingerprints and crash records are exercised exactly as on a real
orchestrator. The ImportError comes from really importing a tiny fake
``coffee_maker`` project that lacks ``SkillNames``, so its traceback has real
frames. Stdlib only: the demo must behave like a foreign program.

Run as ``python -m ohm_tui.demo.agent --type architect --task spec-20
--behaviour crash-import --speed 10 --demo-dir DIR``.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import random
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import NoReturn

BEHAVIOURS = (
    "crash-import",
    "crash-runtime",
    "crash-timeout",
    "complete",
    "hang",
    "prompt",
    "work",
    "exit0-fast",
)
AGENT_TYPES = ("architect", "code_developer", "project_manager", "code_reviewer", "assistant")
LOG_FORMAT = "%(asctime)s - %(name)s - %(levelname)s - %(message)s"
EXIT_SIGTERM = 143
EXIT_SIGINT = 130

# The fake project the ImportError comes from. ``SkillName`` exists; the agent
# asks for ``SkillNames``: the rename bug the real orchestrator hit.
FAKE_PROJECT: dict[str, str] = {
    "coffee_maker/__init__.py": '"""Fake coffee_maker project used by the ohm demo."""\n',
    "coffee_maker/autonomous/__init__.py": '"""Autonomous agents of the fake project."""\n',
    "coffee_maker/autonomous/skill_loader.py": (
        '"""Skill loading (renamed SkillNames -> SkillName, callers not updated)."""\n'
        "\n"
        "from enum import Enum\n"
        "\n"
        "\n"
        "class SkillName(str, Enum):\n"
        '    CREATE_SPEC = "create-spec"\n'
        '    IMPLEMENT = "implement"\n'
        '    REVIEW = "review"\n'
        "\n"
        "\n"
        "def load_skill(name: SkillName) -> str:\n"
        '    return f"skills/{name.value}.md"\n'
    ),
    "coffee_maker/autonomous/agent_skills.py": (
        '"""Skills every agent loads at start-up."""\n'
        "\n"
        "from coffee_maker.autonomous.skill_loader import SkillNames\n"
        "\n"
        "DEFAULT_SKILLS = [SkillNames.CREATE_SPEC]\n"
    ),
}

_WORK_LINES: dict[str, tuple[str, ...]] = {
    "architect": (
        "Reading ROADMAP priority {n}",
        "Drafting spec section {i}/7",
        "Checking existing specs for overlap with {task}",
        "Writing docs/architecture/specs/SPEC-{n}.md",
    ),
    "code_developer": (
        "Implementing {task}: editing coffee_maker/autonomous/module_{i}.py",
        "Running tests: {k} passed",
        "Committing step {i} of {task}",
        "Reading spec for {task}",
    ),
    "project_manager": (
        "Updating ROADMAP status for priority {n}",
        "Checking GitHub PR status ({k} open)",
        "Summarising progress for {task}",
    ),
    "code_reviewer": (
        "Reviewing commit {h} for {task}",
        "Checking style of {k} changed lines",
        "Writing review notes ({i} findings)",
    ),
    "assistant": (
        "Answering question about {task}",
        "Searching docs for '{task}'",
        "Preparing demo step {i}",
    ),
}
_WARNINGS = (
    "Claude API rate limit close: {k}% of quota used",
    "Retrying Claude API call (attempt 2/3)",
    "Slow git operation: {i}.{k}s",
)


def _task_number(task: str) -> int:
    digits = "".join(c for c in task if c.isdigit())
    return int(digits) if digits else 0


class Agent:
    """One fake agent run; all timings are divided by ``speed``."""

    def __init__(
        self,
        agent_type: str,
        task: str,
        behaviour: str,
        duration: float,
        speed: float,
        seed: int,
        demo_dir: Path | None,
    ) -> None:
        self.agent_type = agent_type
        self.task = task
        self.behaviour = behaviour
        self.duration = duration
        self.speed = speed
        self.rng = random.Random(f"{seed}:{agent_type}:{task}:{behaviour}")
        self.demo_dir = demo_dir
        self.log = logging.getLogger(f"agents.{agent_type}")

    # ------------------------------------------------------------ helpers
    def sleep(self, seconds: float) -> None:
        """Sleep ``seconds`` of demo time (real time is divided by speed)."""
        time.sleep(max(0.0, seconds / self.speed))

    def work_line(self, step: int) -> None:
        if self.rng.random() < 0.12:
            self.log.warning(self.rng.choice(_WARNINGS).format(i=step, k=self.rng.randint(10, 99)))
            return
        template = self.rng.choice(_WORK_LINES.get(self.agent_type, _WORK_LINES["assistant"]))
        self.log.info(
            template.format(
                n=_task_number(self.task),
                i=step,
                k=self.rng.randint(3, 400),
                task=self.task,
                h=f"{self.rng.getrandbits(28):07x}",
            )
        )

    def work_for(self, seconds: float, interval: float) -> None:
        """Log work lines every ``interval`` demo seconds for ``seconds``."""
        end = time.monotonic() + max(0.0, seconds) / self.speed
        step = 1
        while True:
            self.work_line(step)
            left = end - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(interval / self.speed, left))
            step += 1

    # ------------------------------------------------------------ behaviours
    def run(self) -> int:
        self.log.info(
            "Starting %s agent for task %s (pid %d)", self.agent_type, self.task, os.getpid()
        )
        handler = getattr(self, "do_" + self.behaviour.replace("-", "_"))
        result: int = handler()
        return result

    def do_complete(self) -> int:
        self.work_for(self.duration, 1.0)
        self.log.info("Task %s complete", self.task)
        return 0

    def do_work(self) -> int:
        self.work_for(self.duration, 4.0)
        self.log.info("Task %s complete after long work", self.task)
        return 0

    def do_exit0_fast(self) -> int:
        self.sleep(0.5)
        self.log.info("Nothing to do for %s, exiting", self.task)
        self.sleep(0.5)
        return 0

    def do_crash_import(self) -> int:
        self.sleep(0.2)
        root = ensure_fake_project(self.demo_dir)
        self.log.info("Loading skills from %s", root)
        sys.path.insert(0, str(root))
        importlib.invalidate_caches()
        # A real import of a real module whose import line fails.
        importlib.import_module("coffee_maker.autonomous.agent_skills")
        return 0  # pragma: no cover - the import above always fails

    def do_crash_runtime(self) -> int:
        self.work_for(self.duration, 1.0)
        self.run_llm_step()
        return 0  # pragma: no cover

    def do_crash_timeout(self) -> int:
        self.work_for(self.duration, 1.0)
        self.log.info("Calling Claude API for %s", self.task)
        call_claude_api(self.task, timeout=120)
        return 0  # pragma: no cover

    def do_hang(self) -> int:
        self.work_for(self.duration, 1.0)
        self.log.info("Waiting for worktree lock for %s", self.task)
        block_forever()

    def do_prompt(self) -> int:
        self.work_for(self.duration, 1.0)
        sys.stdout.write("Apply these changes? [y/N] ")
        sys.stdout.flush()
        # stdin is /dev/null in practice: wait as a person-blocked agent does,
        # alive, silent and idle.
        block_forever()

    def run_llm_step(self) -> None:
        response = request_completion(self.task)
        parse_llm_response(response)


def request_completion(task: str) -> dict[str, list[str]]:
    """The model answered with no choices (what the real agent hit)."""
    return {"choices": [], "task": [task]}


def parse_llm_response(response: dict[str, list[str]]) -> str:
    choices = response.get("choices") or []
    if not choices:
        raise RuntimeError("LLM response parser got empty choices list")
    return choices[0]


def call_claude_api(task: str, timeout: int) -> str:
    raise TimeoutError(f"Claude API call timed out after {timeout}s")


def block_forever() -> NoReturn:
    """Block without CPU until a signal ends the process."""
    while True:
        signal.pause()


def ensure_fake_project(demo_dir: Path | None) -> Path:
    """Create the fake ``coffee_maker`` project (idempotent, safe when concurrent)."""
    base = demo_dir if demo_dir is not None else Path(tempfile.gettempdir())
    root = (
        base / "fakeproject"
        if demo_dir is not None
        else base / f"ohm-demo-fakeproject-{os.getuid()}"
    )
    for rel, text in FAKE_PROJECT.items():
        path = root / rel
        try:
            if path.read_text(encoding="utf-8") == text:
                continue
        except OSError:
            pass
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    return root


def _on_signal(signum: int, frame: FrameType | None) -> None:
    name = signal.Signals(signum).name
    logging.getLogger("agents").info("received %s, shutting down", name)
    raise SystemExit(EXIT_SIGTERM if signum == signal.SIGTERM else EXIT_SIGINT)


def _positive(text: str) -> float:
    value = float(text)
    if not value > 0 or value != value:
        raise argparse.ArgumentTypeError(f"must be greater than 0, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ohm_tui.demo.agent", description=__doc__)
    p.add_argument("--type", dest="agent_type", default="assistant")
    p.add_argument("--task", default="demo-1")
    p.add_argument("--behaviour", choices=BEHAVIOURS, default="complete")
    p.add_argument("--duration", type=float, default=10.0, help="demo seconds of work")
    p.add_argument("--speed", type=_positive, default=1.0, help="time runs this many times faster")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--demo-dir", type=Path, default=None, help="marks the process as a demo's")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    agent = Agent(
        args.agent_type,
        args.task,
        args.behaviour,
        args.duration,
        args.speed,
        args.seed,
        args.demo_dir,
    )
    return agent.run()


if __name__ == "__main__":
    raise SystemExit(main())
