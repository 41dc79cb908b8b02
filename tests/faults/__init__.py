"""The fault suite (issue 5): faults ohm must survive, each with its guarantee.

See ``README.md`` in this folder for the table of faults, tests and guarantees
("What ohm survives"). Shared pieces: ``kit.py`` (a stand-in orchestrator with
real agent processes, monitors, database look-ups), ``driver.py`` (a monitor in
its own process, to SIGKILL or to run without DAC capabilities), ``storm.py``
(the 200-agent crash storm).
"""
