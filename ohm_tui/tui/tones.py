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

PRIORITY_TONES: dict[str, str] = {
    "Critical": "text-error",
    "High": "text-warning",
    "Medium": "text-primary",
    "Low": "",
}

STATUS_TONES: dict[str, str] = {
    "running": "text-success",
    "completed": "",
    "killed": "",
    "crashed": "text-error",
    "given_up": "text-error",
    "respawn_failed": "text-error",
    "zombie": "text-warning",
    "stalled": "text-warning",
    "stale": "text-warning",
    "respawning": "text-primary",
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
