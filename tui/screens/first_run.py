"""First run: no state file yet. (Placeholder; replaced by the inventory forms.)"""

from __future__ import annotations

from pathlib import Path

from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Footer, Header, Static


class FirstRunScreen(Screen[None]):
    def __init__(self, state_path: Path) -> None:
        super().__init__()
        self.state_path = state_path

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(f"No state file at {self.state_path}.")
        yield Footer()
