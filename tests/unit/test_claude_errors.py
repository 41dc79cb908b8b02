"""Root causes of failed ``claude`` calls (era 3), and how a session is named to people."""

from __future__ import annotations

import pytest

from ohm_tui.engine import fmt
from ohm_tui.engine.sources.claude_errors import root_cause


@pytest.mark.parametrize(
    ("status", "error", "expected"),
    [
        ("error", 'API Error: 529 {"type":"overloaded_error","message":"Overloaded"}', "HTTP 529"),
        ("error", "API Error: 429 rate_limit_error", "rate limit"),
        ("error", "API Error: 401 authentication_error: invalid x-api-key", "HTTP 401"),
        ("error", "Your credit balance is too low to access the API", "credit"),
        ("error", "prompt is too long: 210000 tokens > 200000 maximum", "context window"),
        ("error", "API Error: 500 Internal server error", "HTTP 5xx"),
        ("error", "spawn claude ENOENT", "could not be started"),
        ("timeout", "Claude CLI timed out after 48s", "timeout (48 s)"),
        ("timeout", "", "ran past its timeout without"),
    ],
)
def test_known_api_errors_name_their_cause(status: str, error: str, expected: str) -> None:
    cause = root_cause(status, error)
    assert cause is not None and expected in cause


@pytest.mark.parametrize("error", ["", "something odd happened", "exit status 3"])
def test_an_unknown_error_is_not_guessed(error: str) -> None:
    assert root_cause("error", error) is None


def test_a_session_thread_id_is_never_shown_as_a_pid() -> None:
    assert fmt.agent_label("architect", 4242) == "architect [4242]"
    assert fmt.agent_label("project_manager", 140469562037952) == "project_manager (session)"
    assert fmt.agent_label(None, None) == "-"
    assert fmt.agent_label(None, 77) == "[77]"
