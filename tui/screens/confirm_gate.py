"""A confirmation gate as an explicit checklist: one tick per manually delivered client or Kubernetes region.

For a Kubernetes region the screen shows the manifest's path and the kubectl commands to
copy (never the manifest's content: it may hold node.key).
"""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label, SelectionList, Static


class ConfirmGateScreen(ModalScreen[list[str] | None]):
    """Dismissed with the ticked clients (recorded by the caller through engine.confirm), or None."""

    CSS_PATH = "dialogs.tcss"

    BINDINGS = [
        Binding("a", "tick_all", "Tick all"),
        Binding("y", "copy_commands", "Copy commands", show=False),
        Binding("ctrl+s", "confirm", "Confirm ticked"),
        Binding("escape", "cancel", "Cancel"),
    ]

    def __init__(self, reason: str, items: list[str], exports: dict[str, str],
                 instructions: dict[str, list[str]] | None = None) -> None:
        super().__init__()
        self.reason = reason
        self.items = items
        self.exports = exports
        # Kubernetes regions: [step title, "manifest PATH", command, ...] per item
        self.instructions = {item: lines for item, lines in (instructions or {}).items() if item in items}

    def _label(self, item: str) -> str:
        if item in self.instructions:
            step = self.instructions[item][0].split(":")[0]
            return f"{item} — {step}: manifest applied, StatefulSet restarted and rolled out"
        return f"{item} — files in {self.exports.get(item, '?')}"

    @property
    def commands(self) -> str:
        """The manifests and kubectl commands of every region at this gate, as the operator copies them."""
        blocks = []
        for item, (title, manifest, *commands) in self.instructions.items():
            blocks.append("\n".join([f"# {item}: {title}", f"# {manifest}", *commands]))
        return "\n\n".join(blocks)

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-dialog", classes="dialog"):
            yield Label("Confirm the Kubernetes steps" if self.instructions else "Confirm delivery",
                        classes="dialog-title")
            yield Static(self.reason, classes="dialog-text")
            if self.instructions:
                yield Static(self.commands, id="kubernetes-commands", classes="dialog-text", markup=False)
            yield SelectionList[str](*[(self._label(item), item) for item in self.items], id="checklist")
            hint = "Space ticks an item; only what you tick is recorded."
            if self.instructions:
                hint += " y copies the commands."
            yield Static(hint, classes="dialog-hint")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Confirm ticked (ctrl+s)", id="confirm-ticked", variant="success")
                yield Button("Cancel", id="confirm-cancel")

    @property
    def ticked(self) -> list[str]:
        return list(self.query_one(SelectionList).selected)

    def action_copy_commands(self) -> None:
        if self.instructions:
            self.app.copy_to_clipboard(self.commands)
            self.notify("The commands are on the clipboard.")

    def action_tick_all(self) -> None:
        self.query_one(SelectionList).select_all()

    @on(Button.Pressed, "#confirm-ticked")
    def action_confirm(self) -> None:
        if not self.ticked:
            self.notify("Tick at least one item first.", severity="warning")
            return
        self.dismiss(self.ticked)

    @on(Button.Pressed, "#confirm-cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)
