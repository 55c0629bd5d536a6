"""The command palette: certrotate's own actions first, in the wizard's order, then the few Textual built-ins
that make sense here (Theme, Keys, Quit).

Textual's own provider sorts every command by name, which puts "Keys", "Maximize", "Quit",
"Screenshot" and "Theme" among (and before) the wizard's actions; a screenshot file or a
maximised table is not what an operator opens the palette for.
"""

from __future__ import annotations

from textual.command import DiscoveryHit, Hit, Hits, Provider

BUILT_INS = ("Theme", "Keys", "Quit")  # Textual's system commands the palette keeps, in this order


class CertRotateCommands(Provider):
    """The app's `get_system_commands`, discovered in the order it yields them."""

    async def discover(self) -> Hits:
        for title, help_text, callback, discover in self.app.get_system_commands(self.screen):
            if discover:
                yield DiscoveryHit(title, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, help_text, callback, *_ in self.app.get_system_commands(self.screen):
            if (score := matcher.match(title)) > 0:
                yield Hit(score, matcher.highlight(title), callback, help=help_text)
