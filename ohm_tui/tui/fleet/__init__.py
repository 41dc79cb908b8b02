"""The fleet view: one read-only console over several hosts' ``ohm watch --listen``."""
