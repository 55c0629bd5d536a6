"""A confirmation gate as an explicit checklist: one tick per manually delivered client."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label, SelectionList, Static


class ConfirmGateScreen(ModalScreen[list[str] | None]):
    """Dismissed with the ticked clients (recorded by the caller through engine.confirm), or None."""

    BINDINGS = [
        Binding("a", "tick_all", "Tick all"),
        Binding("ctrl+s", "confirm", "Confirm ticked"),
        Binding("escape", "cancel", "Cancel"),
    ]

    def __init__(self, reason: str, items: list[str], exports: dict[str, str]) -> None:
        super().__init__()
        self.reason = reason
        self.items = items
        self.exports = exports

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-dialog", classes="dialog"):
            yield Label("Confirm delivery", classes="dialog-title")
            yield Static(self.reason, classes="dialog-text")
            yield SelectionList[str](
                *[(f"{item} — files in {self.exports.get(item, '?')}", item) for item in self.items],
                id="checklist",
            )
            yield Static("Space ticks a client; only what you tick is recorded.", classes="dialog-hint")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Confirm ticked (ctrl+s)", id="confirm-ticked", variant="success")
                yield Button("Cancel", id="confirm-cancel")

    @property
    def ticked(self) -> list[str]:
        return list(self.query_one(SelectionList).selected)

    def action_tick_all(self) -> None:
        self.query_one(SelectionList).select_all()

    @on(Button.Pressed, "#confirm-ticked")
    def action_confirm(self) -> None:
        if not self.ticked:
            self.notify("Tick at least one client first.", severity="warning")
            return
        self.dismiss(self.ticked)

    @on(Button.Pressed, "#confirm-cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)
