"""State sources: each reads one format the real orchestrator (or its team daemon) writes."""
