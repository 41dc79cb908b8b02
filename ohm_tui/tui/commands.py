"""Command palette (ctrl+p): every dashboard action, found by name.

The entries are built from the dashboard's ``BINDINGS`` so the palette, the
footer and the help screen can never disagree about what exists. Actions the
dashboard cannot run right now (read-only mode, nothing selected) are left out.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any

from textual.actions import parse
from textual.binding import Binding
from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.screen import Screen


@dataclass(frozen=True)
class PaletteEntry:
    title: str
    help: str
    action: str


def entries_for(screen: Screen[Any]) -> Iterator[PaletteEntry]:
    """Palette entries for the enabled actions bound on ``screen``."""
    for binding in screen.BINDINGS:
        if not isinstance(binding, Binding) or not binding.description:
            continue
        _, name, params = parse(binding.action)
        if screen.check_action(name, params) is not True:
            continue
        yield PaletteEntry(binding.description, binding.tooltip, binding.action)
    for entry in getattr(screen, "EXTRA_COMMANDS", ()):
        if isinstance(entry, PaletteEntry):
            _, name, params = parse(entry.action)
            if screen.check_action(name, params) is True:
                yield entry


class OhmCommands(Provider):
    """Searches the actions of the screen the palette was opened from."""

    def _entries(self) -> list[PaletteEntry]:
        return list(entries_for(self.screen))

    def _run(self, action: str) -> None:
        self.app.call_later(self.app.run_action, action, self.screen)

    async def discover(self) -> Hits:
        for entry in self._entries():
            yield DiscoveryHit(entry.title, partial(self._run, entry.action), help=entry.help)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for entry in self._entries():
            score = matcher.match(f"{entry.title} {entry.help}")
            if score > 0:
                yield Hit(
                    score,
                    matcher.highlight(entry.title),
                    partial(self._run, entry.action),
                    help=entry.help,
                )
