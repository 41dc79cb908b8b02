"""Where the console's one stylesheet is, for every App of ohm (the console and the fleet).

Its own module so that an App never imports another App's module for it.
"""

from __future__ import annotations

from pathlib import Path


def css_path() -> Path:
    """The installed copy (the wheel force-includes it here) or the repository's top-level one."""
    installed = Path(__file__).with_name("styles.tcss")
    return installed if installed.is_file() else Path(__file__).parents[2] / "styles.tcss"
