"""A real sample orchestrator: a work loop that spawns fake agents and writes state.

It behaves like the real orchestrator described in ``docs``/interop notes, warts
included, so ohm can be shown and tested on something alive:

- ``agent_state.json`` and ``work_loop_state.json`` in the real formats, written
  every cycle (``3 s / speed``);
- one task (architect ``spec-20``) that always dies with an ImportError, other
  agents that crash, time out, complete, hang, wait at a prompt or exit 0 fast;
- about half the crashed agents are left listed as ``running`` (stale entries);
- now and then the loop freezes and writes nothing.

It never respawns a crashed agent itself: that is ohm's job. It shares
``agent_state.json`` with ohm through the same lock protocol (exclusive
``flock`` on a ``.lock`` sidecar, re-read, change, temp + fsync + ``os.replace``)
and keeps no in-memory copy of that file, so neither side loses the other's
edits. Stdlib only, so it behaves like a foreign program.

Run as ``python -m ohm_tui.demo.orchestrator start --state-dir DIR``.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import logging
import os
import random
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import islice
from pathlib import Path
from types import FrameType
from typing import Any

LOG_FORMAT = "%(asctime)s - %(name)s - %(levelname)s - %(message)s"
LOGGER_NAME = "coffee_maker.orchestrator"
SESSION_ENV = "OHM_DEMO_SESSION"
CYCLE_SECONDS = 3.0  # demo seconds between loop cycles
KEEP_COMPLETED = 100
SHUTDOWN_GRACE = 1.5  # real seconds agents get to exit on shutdown
# The directory holding the ``ohm_tui`` package: ``python -m`` works from there
# even when the package is not installed.
PACKAGE_PARENT = Path(__file__).resolve().parents[2]

# The task that always fails at import, as the real one did for 13 hours.
IMPORT_ERROR_TASK = ("architect", "spec-20")
FLAPPING_TASK = ("project_manager", "roadmap-sync")
REPEAT_IMPORT_ERROR_EVERY = 40  # the roadmap picks spec-20 again now and then

# agent type -> (task prefix, number width, first number, task_type, work-loop type)
TASK_KINDS: dict[str, tuple[str, int, int, str, str]] = {
    "architect": ("spec", 0, 21, "create_spec", "spec_creation"),
    "code_developer": ("impl", 3, 61, "implementation", "implementation"),
    "project_manager": ("status", 0, 1, "roadmap_update", "roadmap_update"),
    "code_reviewer": ("review", 0, 12, "code_review", "code_review"),
    "assistant": ("demo", 0, 1, "assist", "assistance"),
}
AGENT_TYPES = tuple(TASK_KINDS)

# behaviour -> (weight in the steady mix, (min, max) demo seconds of work)
BEHAVIOUR_MIX: dict[str, tuple[int, tuple[float, float]]] = {
    "complete": (36, (6.0, 30.0)),
    "work": (22, (60.0, 240.0)),
    "crash-runtime": (14, (3.0, 12.0)),
    "crash-timeout": (8, (4.0, 15.0)),
    "hang": (4, (2.0, 8.0)),
    "prompt": (4, (2.0, 8.0)),
    "exit0-fast": (4, (1.0, 1.0)),  # becomes a burst of the flapping task
}
# The opening: every seed shows each kind of trouble within the first minute.
SHOWCASE = ("crash-runtime", "crash-timeout", "complete", "complete", "work")


@dataclass(frozen=True, slots=True)
class PlannedAgent:
    """One spawn decision of the work loop."""

    agent_type: str
    task: str
    behaviour: str
    duration: float
    priority_number: int

    @property
    def decision(self) -> tuple[str, str, str]:
        return (self.agent_type, self.task, self.behaviour)


def iter_plan(seed: int) -> Iterator[PlannedAgent]:
    """The endless, deterministic sequence of agents the loop spawns for ``seed``."""
    rng = random.Random(seed)
    counters = {t: kind[2] for t, kind in TASK_KINDS.items()}

    def new(agent_type: str, behaviour: str) -> PlannedAgent:
        prefix, width, _, _, _ = TASK_KINDS[agent_type]
        number = counters[agent_type]
        counters[agent_type] += 1
        low, high = BEHAVIOUR_MIX[behaviour][1]
        duration = round(rng.uniform(low, high), 1)
        return PlannedAgent(agent_type, f"{prefix}-{number:0{width}d}", behaviour, duration, number)

    def import_error() -> PlannedAgent:
        return PlannedAgent(*IMPORT_ERROR_TASK, "crash-import", 1.0, 20)

    def flapping() -> PlannedAgent:
        return PlannedAgent(*FLAPPING_TASK, "exit0-fast", 1.0, 0)

    yield import_error()
    opening = [*SHOWCASE, rng.choice(("hang", "prompt"))]
    rng.shuffle(opening)
    for behaviour in opening:
        yield new(rng.choice(AGENT_TYPES), behaviour)
    count = 1 + len(opening)
    names = list(BEHAVIOUR_MIX)
    weights = [BEHAVIOUR_MIX[n][0] for n in names]
    while True:
        if count % REPEAT_IMPORT_ERROR_EVERY == 0:
            yield import_error()
            count += 1
            continue
        behaviour = rng.choices(names, weights)[0]
        if behaviour == "exit0-fast":
            # The loop that re-picks a task which keeps exiting 0 at once.
            for _ in range(4):
                yield flapping()
                count += 1
            continue
        yield new(rng.choice(AGENT_TYPES), behaviour)
        count += 1


def plan(seed: int, n: int) -> list[tuple[str, str, str]]:
    """The first ``n`` ``(agent_type, task, behaviour)`` decisions for ``seed``."""
    return [p.decision for p in islice(iter_plan(seed), n)]


# --------------------------------------------------------------------- files
def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON via a temp file, fsync and ``os.replace``: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def _empty_agent_state() -> dict[str, Any]:
    return {"active_agents": {}, "completed_agents": []}


def read_agent_state(path: Path, log: logging.Logger) -> dict[str, Any]:
    """Read the file, repairing its shape; a corrupt file is set aside, not fatal."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return _empty_agent_state()
    try:
        data = json.loads(raw.decode("utf-8"))
        if not isinstance(data, dict):
            raise ValueError(f"top level is {type(data).__name__}, not an object")
    except (UnicodeDecodeError, ValueError) as exc:
        aside = path.with_name(f"{path.name}.corrupt-{int(time.time())}")
        with contextlib.suppress(OSError):
            os.replace(path, aside)
        log.error("agent_state.json is corrupt (%s); moved it to %s", exc, aside.name)
        return _empty_agent_state()
    if not isinstance(data.get("active_agents"), dict):
        data["active_agents"] = {}
    if not isinstance(data.get("completed_agents"), list):
        data["completed_agents"] = []
    return data


def update_agent_state(
    path: Path, mutate: Callable[[dict[str, Any]], None], log: logging.Logger
) -> dict[str, Any]:
    """Lock, re-read, ``mutate``, write: the protocol ohm uses on the same file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lock_path = path.with_name(path.name + ".lock")
    with lock_path.open("a") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        try:
            data = read_agent_state(path, log)
            mutate(data)
            write_json_atomic(path, data)
            return data
        finally:
            fcntl.flock(lock.fileno(), fcntl.LOCK_UN)


# --------------------------------------------------------------------- loop
@dataclass(slots=True)
class Child:
    """An agent this orchestrator process spawned and must reap."""

    popen: subprocess.Popen[bytes]
    argv: list[str]
    planned: PlannedAgent
    started_at: str  # naive local ISO, as written to the state file
    started_epoch: float
    log_file: Path


def _exit_status(code: int) -> str:
    if code == 0:
        return "completed"
    if code < 0 or code in (128 + signal.SIGTERM, 128 + signal.SIGKILL):
        return "killed"
    return "failed"


def stop_children(children: Iterable[Child]) -> None:
    """SIGTERM every agent, then SIGKILL what is left after ``SHUTDOWN_GRACE`` (both eras)."""
    children = list(children)
    for child in children:
        with contextlib.suppress(ProcessLookupError):
            child.popen.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + SHUTDOWN_GRACE
    for child in children:
        try:
            child.popen.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.popen.kill()
            child.popen.wait()


class Orchestrator:
    """The work loop. State on disk is the source of truth; memory holds only children."""

    def __init__(
        self,
        state_dir: Path,
        *,
        seed: int,
        speed: float,
        max_agents: int,
        freeze_every: float,
        freeze_for: float,
        session_id: str | None,
    ) -> None:
        self.state_dir = state_dir
        self.seed = seed
        self.speed = speed
        self.max_agents = max_agents
        self.freeze_every = freeze_every
        self.freeze_for = freeze_for
        self.session_id = session_id
        self.orch_dir = state_dir / "orchestrator"
        self.agent_state = self.orch_dir / "agent_state.json"
        self.work_loop_state = self.orch_dir / "work_loop_state.json"
        self.cursor_file = self.orch_dir / "demo_plan_cursor"
        self.pid_file = self.orch_dir / "orchestrator.pid"
        self.logs_dir = state_dir / "logs"
        self.log = logging.getLogger(LOGGER_NAME)
        self.rng = random.Random(seed * 7919 + 1)
        self.children: dict[int, Child] = {}
        self.stopping = False
        self.cycle = 0
        self.cursor = self._read_cursor()
        self.plan = islice(iter_plan(seed), self.cursor, None)
        self.pending: PlannedAgent | None = None
        self.last_roadmap_update = time.time()
        self.next_freeze = time.monotonic() + freeze_every if freeze_every > 0 else None

    # -- helpers
    def _read_cursor(self) -> int:
        try:
            return max(0, int(self.cursor_file.read_text(encoding="utf-8").strip()))
        except (OSError, ValueError):
            return 0

    def sleep(self, seconds: float) -> None:
        """Sleep in short slices so a stop request is noticed quickly."""
        end = time.monotonic() + seconds
        while not self.stopping:
            left = end - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(0.1, left))

    def request_stop(self, signum: int, frame: FrameType | None) -> None:
        self.stopping = True

    def agent_env(self) -> dict[str, str]:
        env = dict(os.environ)
        if self.session_id:
            env[SESSION_ENV] = self.session_id
        return env

    def agent_argv(self, p: PlannedAgent) -> list[str]:
        return [
            sys.executable,
            "-m",
            "ohm_tui.demo.agent",
            "--type",
            p.agent_type,
            "--task",
            p.task,
            "--behaviour",
            p.behaviour,
            "--duration",
            f"{p.duration:g}",
            "--speed",
            f"{self.speed:g}",
            "--seed",
            str(self.seed),
            "--demo-dir",
            str(self.state_dir),
        ]

    # -- one cycle
    def spawn(self, p: PlannedAgent) -> Child:
        """Start one agent, output to its own log file (never a pipe nobody reads)."""
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        provisional = self.logs_dir / f".spawning-{p.agent_type}-{p.task}-{os.getpid()}.log"
        argv = self.agent_argv(p)
        try:
            with provisional.open("ab") as out:
                popen = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    env=self.agent_env(),
                    cwd=PACKAGE_PARENT,
                    close_fds=True,
                )
        except OSError:
            with contextlib.suppress(OSError):
                provisional.unlink()
            raise
        final = self.logs_dir / f"{p.agent_type}-{p.task}-{popen.pid}.log"
        os.replace(provisional, final)  # the child keeps writing to the same inode
        now = time.time()
        child = Child(popen, argv, p, datetime.fromtimestamp(now).isoformat(), now, final)
        self.log.info(
            "Spawned %s for %s (priority %d): pid %d",
            p.agent_type,
            p.task,
            p.priority_number,
            popen.pid,
        )
        return child

    def reap(self) -> list[tuple[Child, int]]:
        ended = []
        for pid, child in list(self.children.items()):
            code = child.popen.poll()
            if code is not None:
                del self.children[pid]
                ended.append((child, code))
                level = logging.INFO if code == 0 else logging.WARNING
                self.log.log(
                    level,
                    "Agent %s (pid %d, %s) exited with code %d",
                    child.planned.agent_type,
                    pid,
                    child.planned.task,
                    code,
                )
        return ended

    def next_spawns(self) -> list[Child]:
        spawned: list[Child] = []
        busy_tasks = {c.planned.task for c in self.children.values()}
        while not self.stopping and len(self.children) + len(spawned) < self.max_agents:
            p = self.pending or next(self.plan)
            if p.task in busy_tasks:
                # Same task still running: pick it again next cycle.
                self.pending = p
                break
            self.pending = None
            self.cursor += 1
            try:
                child = self.spawn(p)
            except OSError as exc:
                self.log.error("Cannot spawn %s for %s: %s", p.agent_type, p.task, exc)
                break
            spawned.append(child)
            busy_tasks.add(p.task)
        if spawned:
            with contextlib.suppress(OSError):
                self.cursor_file.write_text(str(self.cursor), encoding="utf-8")
        return spawned

    def apply(
        self,
        data: dict[str, Any],
        ended: Sequence[tuple[Child, int]],
        spawned: Sequence[Child],
        leave_running: set[int],
    ) -> None:
        active: dict[str, Any] = data["active_agents"]
        completed: list[Any] = data["completed_agents"]
        for child, code in ended:
            key = str(child.popen.pid)
            entry = active.get(key)
            # Only touch our own entry: ohm may have moved it or reused the key.
            if not isinstance(entry, dict) or entry.get("started_at") != child.started_at:
                continue
            if child.popen.pid in leave_running:
                continue  # the real loop forgot these: stale "running" entries
            del active[key]
            completed.append(
                {
                    **entry,
                    "status": _exit_status(code),
                    "exit_code": code,
                    "completed_at": datetime.now().isoformat(),
                }
            )
        for child in spawned:
            p = child.planned
            active[str(child.popen.pid)] = {
                "pid": child.popen.pid,
                "agent_type": p.agent_type,
                "task_id": p.task,
                "task_type": TASK_KINDS[p.agent_type][3],
                "priority_number": p.priority_number,
                "command": shlex.join(child.argv),
                "started_at": child.started_at,
                "status": "running",
            }
        if len(completed) > KEEP_COMPLETED:
            del completed[: len(completed) - KEEP_COMPLETED]

    def write_work_loop_state(self) -> None:
        tasks = {}
        for child in self.children.values():
            p = child.planned
            tasks[p.task.replace("-", "_")] = {
                "task_id": p.task,
                "pid": child.popen.pid,
                "started_at": child.started_epoch,
                "type": TASK_KINDS[p.agent_type][4],
            }
        write_json_atomic(
            self.work_loop_state,
            {
                "last_update": time.time(),
                "active_tasks": tasks,
                "last_roadmap_update": self.last_roadmap_update,
            },
        )

    def run_cycle(self) -> None:
        self.cycle += 1
        ended = self.reap()
        leave_running = {
            child.popen.pid for child, code in ended if code != 0 and self.rng.random() < 0.5
        }
        spawned = self.next_spawns()
        self.children.update({c.popen.pid: c for c in spawned})
        data = update_agent_state(
            self.agent_state,
            lambda d: self.apply(d, ended, spawned, leave_running),
            self.log,
        )
        if self.cycle % 10 == 1:
            self.last_roadmap_update = time.time()
            self.log.info("Reloaded ROADMAP priorities")
        self.write_work_loop_state()
        self.log.info(
            "Work loop cycle %d: %d agents running, %d listed active",
            self.cycle,
            len(self.children),
            len(data["active_agents"]),
        )

    def maybe_freeze(self) -> None:
        if self.next_freeze is None or time.monotonic() < self.next_freeze:
            return
        self.log.info("Checking GitHub for new pull requests...")
        # The loop is stuck here: no state, no log, children not reaped.
        self.sleep(self.freeze_for)
        self.next_freeze = time.monotonic() + self.freeze_every
        if not self.stopping:
            self.log.warning("GitHub check returned after %.0fs", self.freeze_for)

    # -- lifecycle
    def write_pid_file(self) -> None:
        self.orch_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.pid_file.with_name(f".{self.pid_file.name}.{os.getpid()}.tmp")
        tmp.write_text(f"{os.getpid()}\n", encoding="utf-8")
        os.replace(tmp, self.pid_file)

    def remove_pid_file(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            if int(self.pid_file.read_text(encoding="utf-8").strip()) == os.getpid():
                self.pid_file.unlink()

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self.request_stop)
        signal.signal(signal.SIGINT, self.request_stop)
        self.write_pid_file()
        kept = read_agent_state(self.agent_state, self.log)
        self.log.info(
            "Orchestrator started (pid %d, seed %d, speed %g): %d agents listed active",
            os.getpid(),
            self.seed,
            self.speed,
            len(kept["active_agents"]),
        )
        cycle_len = CYCLE_SECONDS / self.speed
        try:
            while not self.stopping:
                began = time.monotonic()
                try:
                    self.run_cycle()
                except OSError as exc:  # a full disk must not end the loop
                    self.log.error("Work loop cycle %d failed: %s", self.cycle, exc)
                self.maybe_freeze()
                self.sleep(max(0.0, cycle_len - (time.monotonic() - began)))
        finally:
            self.shutdown()
        return 0

    def shutdown(self) -> None:
        self.log.info("Shutting down: stopping %d agents", len(self.children))
        stop_children(self.children.values())
        ended = [(c, c.popen.returncode) for c in self.children.values()]
        self.children.clear()
        with contextlib.suppress(OSError):
            update_agent_state(
                self.agent_state, lambda d: self.apply(d, ended, [], set()), self.log
            )
            self.write_work_loop_state()
        self.remove_pid_file()
        self.log.info("Orchestrator stopped")


# --------------------------------------------------------------------- CLI
def _positive(text: str) -> float:
    value = float(text)
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number greater than 0, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ohm_tui.demo.orchestrator", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    start = sub.add_parser("start", help="run the work loop until SIGTERM")
    start.add_argument("--state-dir", type=Path, required=True)
    start.add_argument("--seed", type=int, default=7)
    start.add_argument("--speed", type=_positive, default=1.0)
    start.add_argument("--max-agents", type=int, default=6)
    start.add_argument(
        "--freeze-every", type=float, default=None, help="seconds between freezes (0: never)"
    )
    start.add_argument("--freeze-for", type=float, default=None, help="seconds a freeze lasts")
    start.add_argument("--session-id", default=None, help="exported to agents as " + SESSION_ENV)
    start.add_argument(
        "--era",
        type=int,
        choices=(1, 2, 3),
        default=1,
        help="1: JSON files; 2: agent_lifecycle table; 3: claude sessions (orchestrator_db)",
    )
    start.add_argument(
        "--log-file",
        type=Path,
        default=None,
        help="append the log here instead of stdout (so a restart by ohm keeps the heartbeat)",
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler: logging.Handler
    if args.log_file is not None:
        args.log_file.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(args.log_file, mode="a", encoding="utf-8")
    else:
        handler = logging.StreamHandler(sys.stdout)
    logging.basicConfig(handlers=[handler], format=LOG_FORMAT, level=logging.INFO, force=True)
    speed: float = args.speed
    cls: type[Orchestrator] = Orchestrator
    if args.era > 1:
        from ohm_tui.demo import orchestrator_db

        cls = (
            orchestrator_db.SessionOrchestrator
            if args.era == 3
            else orchestrator_db.LifecycleOrchestrator
        )
    orchestrator = cls(
        args.state_dir.resolve(),
        seed=args.seed,
        speed=speed,
        max_agents=max(1, args.max_agents),
        freeze_every=180.0 / speed if args.freeze_every is None else args.freeze_every,
        freeze_for=400.0 / speed if args.freeze_for is None else max(0.0, args.freeze_for),
        session_id=args.session_id or os.environ.get(SESSION_ENV),
    )
    return orchestrator.run()


if __name__ == "__main__":
    raise SystemExit(main())
