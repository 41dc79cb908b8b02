"""The fleet: one read-only view over several hosts' ``ohm watch --listen`` endpoints.

A small HTTP client (the standard library's ``urllib``) polls each host's
``/api/v1`` and builds a ``FleetSnapshot`` of the engine's own models, tagged by
host. It never imports textual (import-linter), never sends process control over
HTTP (the API is GET-only anyway), and a host that does not answer is shown as
unreachable: its last-known agents keep their last-known rows, never "crashed".
"""
