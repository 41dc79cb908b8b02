"""Theme colours for ``Text`` cells.

``DataTable`` cells are Rich ``Text``, which knows nothing of Textual's theme
variables. Looking the variable up in the running app's theme keeps cells in
step with the theme (and with ``NO_COLOR``, which Textual applies on output)
instead of hard-coding colours.
"""

from __future__ import annotations

from rich.style import Style
from textual.app import App
from textual.color import Color, ColorParseError

from ohm_tui.engine.model import Lifecycle

PRIORITY_TONES: dict[str, str] = {
    "Critical": "text-error",
    "High": "text-warning",
    "Medium": "text-primary",
    "Low": "",
}

STATUS_TONES: dict[str, str] = {
    Lifecycle.RUNNING: "text-success",
    Lifecycle.COMPLETED: "",
    Lifecycle.KILLED: "",
    Lifecycle.CRASHED: "text-error",
    Lifecycle.GIVEN_UP: "text-error",
    Lifecycle.RESPAWN_FAILED: "text-error",
    Lifecycle.ZOMBIE: "text-warning",
    Lifecycle.STALLED: "text-warning",
    Lifecycle.STALE: "text-warning",
    Lifecycle.RESPAWNING: "text-primary",
}


def tone(app: App[object], variable: str, *, bold: bool = False) -> Style:
    """A Rich style coloured with the theme variable ``variable`` (e.g. ``"text-error"``)."""
    if not variable:
        return Style(bold=bold) if bold else Style.null()
    value = app.theme_variables.get(variable)
    if not value:
        return Style(bold=bold) if bold else Style.null()
    try:
        color = Color.parse(value)
    except ColorParseError:
        return Style(bold=bold) if bold else Style.null()
    return Style(color=color.rich_color, bold=bold)
