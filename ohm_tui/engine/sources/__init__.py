"""Readers of what the orchestrator writes, one module per table or file."""
