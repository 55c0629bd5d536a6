"""Choose what to rotate: the CA (four phases), first-time setup, or leaf certificates only;
and the client CA, when the cluster has one of its own (cluster.client_ca_key)."""

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
CLIENT_CA_CHOICE = ("client-ca", "Rotate the client CA",
                    "New client CA in ca-client.crt on every node; wait, new client certificates, retire the old one.")


class StartScreen(ModalScreen[str | None]):
    """Dismissed with the rotation kind chosen (`ca`, `init`, `nodes`, `clients`, `ui`, `client-ca`) or None."""

    BINDINGS = [
        Binding("1", "choose('ca')", "CA rotation"),
        Binding("2", "choose('init')", "First-time setup"),
        Binding("3", "choose('nodes')", "Nodes only"),
        Binding("4", "choose('clients')", "Clients only"),
        Binding("5", "choose('ui')", "UI certificate"),
        Binding("6", "choose('client-ca')", "Client CA"),
        Binding("escape", "cancel", "Cancel"),
        Binding("o", "app.ocsp", "OCSP modes"),  # what security.ocsp.mode does, before choosing (tui/screens/ocsp.py)
    ]

    def __init__(self, *, client_ca: bool = False) -> None:
        super().__init__()
        self.choices = CHOICES + ((CLIENT_CA_CHOICE,) if client_ca else ())

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "choose" and parameters and parameters[0] not in {kind for kind, _, _ in self.choices}:
            return False
        return True

    def compose(self) -> ComposeResult:
        with Vertical(id="start-dialog", classes="dialog"):
            yield Label("Start a rotation", classes="dialog-title")
            for number, (kind, title, text) in enumerate(self.choices, start=1):
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
