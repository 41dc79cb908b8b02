"""Readers of what the orchestrator (or its team daemon) writes, one module per table or file."""
