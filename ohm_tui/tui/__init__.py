"""The Textual console: a thin face over ``OrchestratorHealthMonitor`` (see ``app.make_app``)."""
