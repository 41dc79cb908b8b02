"""Alerts out: ohm's open issues to Alertmanager, and grouped messages to webhooks.

It reads the engine's last report only (never textual, the console or the CLI),
and sends from its own threads with bounded queues, timeouts and retries, so a
slow or down receiver never delays crash handling.
"""
