"""Choose what to rotate: the kinds the registry offers for this cluster (core.rotation.kinds).

The client CA rotation is offered only when the cluster has a client CA of its own
(cluster.client_ca_key). Each kind keeps its number whether or not the others are offered.
"""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label, Static

from core.config.inventory import ClusterConfig
from core.rotation import kinds

NUMBERS = {name: number for number, name in enumerate(kinds.NAMES, start=1)}


class StartScreen(ModalScreen[str | None]):
    """Dismissed with the name of the rotation kind chosen, or None."""

    CSS_PATH = "dialogs.tcss"

    BINDINGS = [Binding(str(number), f"choose('{name}')", kinds.REGISTRY[name].choice)
                for name, number in NUMBERS.items()] + [
        Binding("escape", "cancel", "Cancel"),
        Binding("o", "app.ocsp", "OCSP modes"),  # what security.ocsp.mode does, before choosing (tui/screens/ocsp.py)
    ]

    def __init__(self, cluster: ClusterConfig) -> None:
        super().__init__()
        self.choices = kinds.offered(cluster)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "choose" and parameters and parameters[0] not in {kind.name for kind in self.choices}:
            return False
        return True

    def compose(self) -> ComposeResult:
        with Vertical(id="start-dialog", classes="dialog"):
            yield Label("Start a rotation", classes="dialog-title")
            for kind in self.choices:
                yield Button(f"{NUMBERS[kind.name]}  {kind.choice}", id=f"start-{kind.name}", classes="choice")
                yield Static(kind.summary, classes="choice-text")
            yield Static("Nothing is changed on any host until you run the first step.", classes="dialog-text")

    @on(Button.Pressed, ".choice")
    def chosen(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id.removeprefix("start-"))

    def action_choose(self, kind: str) -> None:
        self.dismiss(kind)

    def action_cancel(self) -> None:
        self.dismiss(None)
