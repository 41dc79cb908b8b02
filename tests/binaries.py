"""External binaries tests need (Prometheus, promtool): skip outside CI, fail in CI.

``.ci/run`` installs Debian's ``prometheus`` package, so under ``CI=true`` a
missing binary is a broken CI image, not a reason to skip.
"""

from __future__ import annotations

import os
import shutil

import pytest


def require_binary(name: str, *alternatives: str) -> str:
    """The path of ``name`` (or of the first of ``alternatives`` found: Debian calls
    Alertmanager ``prometheus-alertmanager``); a skip (or, under ``CI=true``, a
    failure) when none is installed."""
    for candidate in (name, *alternatives):
        path = shutil.which(candidate)
        if path is not None:
            return path
    message = (
        f"{name} is not installed (apt-get install prometheus prometheus-alertmanager; "
        ".ci/run does this)"
    )
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true: {message}")
    pytest.skip(message)
