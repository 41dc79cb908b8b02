"""Figures 2-3 for the peers: the same 0.2 s crasher under supervisord and circus.

All three daemons run at once, each with ``TRIALS`` copies of the crasher, for a
fixed observation window: their delays are whole seconds, so sharing the window
does not move them, and it keeps the bench short. Respawn latency is each
death -> next start, from the agents' own records; the retry count is starts - 1
per copy, and the daemon's own status says whether it gave up.
"""

from __future__ import annotations

import time
from pathlib import Path

from bench.common import Procs, Row, Section, crasher_argv, read_record, respawn_gaps, stat_row
from bench.peers import Circus, Supervisord

TRIALS = 5
RETRIES = 3


def _programs(work: Path, prefix: str) -> tuple[dict[str, list[str]], dict[str, Path]]:
    records = {f"crash{i}": work / f"{prefix}-crash{i}.txt" for i in range(TRIALS)}
    return {n: crasher_argv(p, "0.2") for n, p in records.items()}, records


def _gaps_and_counts(records: dict[str, Path]) -> tuple[list[float], list[int]]:
    gaps: list[float] = []
    counts: list[int] = []
    for path in records.values():
        ev = read_record(path)
        gaps.extend(g * 1000 for g in respawn_gaps(ev))
        counts.append(max(0, sum(1 for k, _, _ in ev if k == "start") - 1))
    return gaps, counts


def run(work: Path, quick: bool) -> Section:
    sec = Section("peers")
    window = 9.0 if quick else 12.0
    procs = Procs()
    sup_progs, sup_rec = _programs(work, "sup")
    c5_progs, c5_rec = _programs(work, "circus5")
    c1_progs, c1_rec = _programs(work, "circus1")
    sup = Supervisord(work / "supervisord", sup_progs, startretries=str(RETRIES))
    c5 = Circus(work / "circus5", c5_progs, max_retry=RETRIES)  # check_delay: circus's default 5 s
    c1 = Circus(work / "circus1", c1_progs, check_delay=1.0, max_retry=RETRIES)
    try:
        for d in (sup, c5, c1):
            d.start(procs)
        time.sleep(window)  # the observation window: the daemons act on their own clocks
        sup_states = sup.states()
        c5_states = c5.states()
        c1_states = c1.states()
    finally:
        for d in (sup, c5, c1):
            d.stop(procs)
        procs.close()

    for label, records, limit_note in (
        ("supervisord 4.3 (defaults: startsecs=1, startretries=3)", sup_rec, ""),
        ("circus 0.19, check_delay 5 s (default)", c5_rec, ""),
        ("circus 0.19, check_delay 1 s", c1_rec, ""),
    ):
        gaps, _ = _gaps_and_counts(records)
        sec.rows.append(
            stat_row(
                "2 respawn",
                f"{label}: crash -> respawned",
                gaps,
                "ms",
                None,
                note=f"same run, same agent; {window:g} s window" + limit_note,
            )
        )
    for label, records, states, stopped_state in (
        (f"supervisord, startretries={RETRIES}", sup_rec, sup_states, "FATAL"),
        (f"circus check_delay 5 s, max_retry={RETRIES}", c5_rec, c5_states, "stopped"),
        (f"circus check_delay 1 s, max_retry={RETRIES}", c1_rec, c1_states, "stopped"),
    ):
        _, counts = _gaps_and_counts(records)
        final = [states.get(name, "?") for name in records]
        gave_up = sum(1 for s in final if s.lower() == stopped_state.lower())
        exact = all(c == RETRIES for c in counts) and gave_up == len(records)
        sec.rows.append(
            Row(
                "3 retry limit",
                f"{label}: respawns per trial in {window:g} s",
                "/".join(str(c) for c in counts),
                "-",
                str(len(counts)),
                f"exactly {RETRIES}, then gave up, every trial",
                "reference: right" if exact else "reference: wrong",
                f"state at the end: {', '.join(sorted(set(final)))} "
                f"({gave_up}/{len(final)} gave up)",
            )
        )
    return sec
