"""The ``ohm`` command line: argparse over ``OrchestratorHealthMonitor``, kept thin."""
