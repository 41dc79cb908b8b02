"""The bugs room: the tracker (file, dedup, rate limit, escalate, tickets) and the
rules for which faults deserve a bug (reporting)."""
