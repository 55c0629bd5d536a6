"""Quitting over a filled first-run form asks first: the form is not written anywhere until ctrl+s."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label, Static


class DiscardFormScreen(ModalScreen[bool]):
    """Dismissed with True to quit and lose the form, False to go back to it."""

    CSS_PATH = "dialogs.tcss"

    BINDINGS = [
        Binding("y", "discard", "Discard and quit"),
        Binding("escape", "keep", "Keep editing"),
    ]

    def compose(self) -> ComposeResult:
        with Vertical(id="discard-dialog", classes="dialog"):
            yield Label("Quit and discard the form?", classes="dialog-title")
            yield Static("Nothing has been written yet: the state file is written only by ctrl+s (Write state "
                         "file). Quitting now loses what you typed.", classes="dialog-text")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Discard and quit (y)", id="discard-yes", variant="error")
                yield Button("Keep editing (esc)", id="discard-no", variant="primary")

    @on(Button.Pressed, "#discard-yes")
    def action_discard(self) -> None:
        self.dismiss(True)

    @on(Button.Pressed, "#discard-no")
    def action_keep(self) -> None:
        self.dismiss(False)
