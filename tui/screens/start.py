"""Choose what to rotate: the CA (four phases), first-time setup, or leaf certificates only."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label, Static

CHOICES = (
    ("ca", "CA rotation", "New CA; trust it everywhere, wait, new node and client certificates, retire the old CA."),
    ("init", "First-time setup", "A cluster without certificates: CA, node and client certificates, distributed and verified."),
    ("nodes", "Node certificates only", "New node certificates from the current CA (e.g. new SANs)."),
    ("clients", "Client certificates only", "New client certificates from the current CA (e.g. a leaked client key)."),
    ("ui", "UI certificate", "Your own DB Console certificate (public or organisational CA), checked, then node by node."),
)


class StartScreen(ModalScreen[str | None]):
    """Dismissed with the rotation kind chosen (`ca`, `init`, `nodes`, `clients`) or None."""

    BINDINGS = [
        Binding("1", "choose('ca')", "CA rotation"),
        Binding("2", "choose('init')", "First-time setup"),
        Binding("3", "choose('nodes')", "Nodes only"),
        Binding("4", "choose('clients')", "Clients only"),
        Binding("5", "choose('ui')", "UI certificate"),
        Binding("escape", "cancel", "Cancel"),
    ]

    def compose(self) -> ComposeResult:
        with Vertical(id="start-dialog", classes="dialog"):
            yield Label("Start a rotation", classes="dialog-title")
            for number, (kind, title, text) in enumerate(CHOICES, start=1):
                yield Button(f"{number}  {title}", id=f"start-{kind}", classes="choice")
                yield Static(text, classes="choice-text")
            yield Static("Nothing is changed on any host until you run the first step.", classes="dialog-text")

    @on(Button.Pressed, ".choice")
    def chosen(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id.removeprefix("start-"))

    def action_choose(self, kind: str) -> None:
        self.dismiss(kind)

    def action_cancel(self) -> None:
        self.dismiss(None)
