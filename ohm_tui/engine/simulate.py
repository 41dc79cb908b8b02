"""``ohm simulate-crash``: a real agent process that really crashes.

It exists so operators can test their setup end to end: the crash goes through
the same runner, log parsing, respawn and bug filing as a real one.
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

# error name -> Python that raises it for real, from a module with real frames.
_RAISERS: dict[str, str] = {
    "ImportError": "from coffee_maker.autonomous.skill_loader import SkillNames",
    "ModuleNotFoundError": "import coffee_maker.autonomous.missing_skill_module",
    "RuntimeError": "raise RuntimeError('LLM response parser got empty choices list')",
    "TimeoutError": "raise TimeoutError('Claude API call timed out after 120s')",
    "KeyError": "{}['priority_number']",
    "ValueError": "int('not-a-number')",
    "ZeroDivisionError": "1 / 0",
    "FileNotFoundError": "open('/nonexistent/ROADMAP.md')",
    "AttributeError": "None.spec",
    "MemoryError": "raise MemoryError('simulated out of memory')",
}

KNOWN_ERRORS = tuple(_RAISERS)


def crash_command(agent_type: str, error: str, workdir: Path) -> tuple[list[str], str]:
    """Write a tiny project into ``workdir`` and return (argv, cwd) that crashes with ``error``."""
    if error not in _RAISERS:
        raise ValueError(f"unknown error {error!r}; choose one of: {', '.join(KNOWN_ERRORS)}")
    pkg = workdir / "coffee_maker" / "autonomous"
    pkg.mkdir(parents=True, exist_ok=True)
    for init in (workdir / "coffee_maker" / "__init__.py", pkg / "__init__.py"):
        init.touch()
    (pkg / "skill_loader.py").write_text(
        '"""Skill loader (simulated): deliberately lacks SkillNames."""\n\n'
        "def load_skills():\n    return []\n"
    )
    agent = pkg / "simulated_agent.py"
    agent.write_text(
        textwrap.dedent(
            f'''\
            """Simulated agent that crashes with {error}."""
            import logging
            import sys

            logging.basicConfig(
                stream=sys.stdout,
                level=logging.INFO,
                format="%(asctime)s - %(name)s - %(levelname)s - %(message)s",
            )
            log = logging.getLogger("agents." + {agent_type!r})


            def run_task():
                log.info("starting simulated task")
                {_RAISERS[error]}


            if __name__ == "__main__":
                run_task()
            '''
        )
    )
    argv = [sys.executable, "-m", "coffee_maker.autonomous.simulated_agent", "--agent", agent_type]
    return argv, str(workdir)
