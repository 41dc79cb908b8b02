"""ohm's HTTP face: ``/metrics`` for Prometheus and a small read-only JSON API.

It depends on the engine's public API only (never on textual, the console or
the CLI) and never slows the engine: requests are served from what a background
publisher collected once per check, with bounded threads and capped requests.
"""
