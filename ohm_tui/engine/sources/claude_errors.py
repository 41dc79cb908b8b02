"""Why a ``claude`` call failed, in words: the root cause of an era-3 session failure.

A failed call leaves only its ``status`` (``error``/``timeout``) and ``error`` text
(interop.md, era 3): there is no traceback to parse. The API's errors are few and
well known, and the operator's next step differs for each (wait out an overload,
fix a key, top up credit), so each known one gets its own cause; anything else
stays unknown rather than guessed.
"""

from __future__ import annotations

import re

# (pattern in the error text, root cause). First match wins; order from specific to broad.
_CAUSES: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(p, re.IGNORECASE), cause)
    for p, cause in (
        (
            r"\b529\b|overloaded",
            "the API was overloaded (HTTP 529): transient, on the provider's side",
        ),
        (r"\b429\b|rate.?limit", "the API rate limit was reached (HTTP 429)"),
        (
            r"\b401\b|authentication|invalid (x-)?api.?key",
            "the API refused the key (HTTP 401): check the orchestrator's API key",
        ),
        (r"\b403\b|permission", "the API refused the request (HTTP 403): a permission is missing"),
        (
            r"credit balance|billing|quota",
            "the account's credit or quota ran out",
        ),
        (
            r"prompt is too long|context (window|length)|too many tokens",
            "the prompt was longer than the model's context window",
        ),
        (r"\b5\d\d\b|internal server error|api_error", "the API failed on its side (HTTP 5xx)"),
        (
            r"ENOENT|command not found|No such file",
            "the claude CLI could not be started (not installed or not on PATH)",
        ),
    )
)
_AFTER = re.compile(r"after\s+(\d+(?:\.\d+)?)\s*s\b", re.IGNORECASE)


def root_cause(status: str | None, error: str) -> str | None:
    """The cause of one failed call, or None when the text names no known cause."""
    for pattern, cause in _CAUSES:
        if pattern.search(error):
            return cause
    if status == "timeout" or "timed out" in error.lower():
        after = _AFTER.search(error)
        limit = f" ({after.group(1)} s)" if after else ""
        return f"the claude call ran past its timeout{limit} without an answer"
    return None
