"""A CA that expires before the usual wait ends: the operator may shorten the wait, knowingly.

The wait between trust and new leaves is what gives every client time to pick up the new
bundle; shortening it is a trade the operator makes with the dates in front of them. The
screen shows the sentence core gave (the CA's end, the usual wait, the longest that fits)
and takes the number of days; nothing starts until they press "Start with a shorter wait".
"""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static


class ShortWaitScreen(ModalScreen[int | None]):
    """Dismissed with the acknowledged number of wait days, or None."""

    CSS_PATH = "dialogs.tcss"

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, sentence: str, longest: int) -> None:
        super().__init__()
        self.sentence = sentence
        self.longest = longest

    def compose(self) -> ComposeResult:
        with Vertical(id="short-wait-dialog", classes="dialog"):
            yield Label("The CA expires too soon for the usual wait", classes="dialog-title")
            yield Static(self.sentence, classes="dialog-text", markup=False)
            yield Static(f"Days to wait between the trust step and the new leaves (0 to {self.longest}); "
                         "manually delivered clients must get the new bundle within them:", classes="dialog-text")
            yield Input(str(self.longest), id="short-wait-days", type="integer")
            yield Static(id="short-wait-error", classes="dialog-text")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Start with a shorter wait", id="short-wait-start", variant="warning")
                yield Button("Cancel (Esc)", id="short-wait-cancel", variant="primary")

    @on(Button.Pressed, "#short-wait-start")
    @on(Input.Submitted, "#short-wait-days")
    def start(self) -> None:
        text = self.query_one("#short-wait-days", Input).value.strip()
        if not text.isdigit() or int(text) > self.longest:
            self.query_one("#short-wait-error", Static).update(f"Give a whole number of days from 0 to {self.longest}.")
            return
        self.dismiss(int(text))

    @on(Button.Pressed, "#short-wait-cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)
