"""Rollback, behind a screen that says exactly what will happen before anything does."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label, Static

from core.config.record import RotationRecord
from core.config.state import State
from core.config.workspace import Workspace
from core.rotation import discard
from tui.view import client_key, kind_title


def rollback_summary(state: State) -> str:
    rotation = state.rotation
    nodes = ", ".join(n.name for n in state.inventory.nodes)
    ssh_clients = [client_key(c) for c in state.inventory.clients if c.delivered_over_ssh]
    manual = [client_key(c) for c in state.inventory.clients if not c.delivered_over_ssh]
    node_line = (f"• Nodes {nodes}: the files they had before the rotation come back from the backups taken on "
                 "upload; each node is reloaded and must serve its previous certificate again.")
    if state.inventory.cluster.on_kubernetes:
        node_line = (f"• Nodes {nodes}: for every region a step touched, a manifest restores its Secret from before "
                     "the rotation (node.crt/node.key too once a promote manifest was written: put them in "
                     "certs/kubernetes/<rotation id>/before/<region>/). You apply it and restart the StatefulSet, "
                     "then confirm; nodes with a sql_addr are verified.")
    lines = [f"Rotation {rotation.get('id')} ({kind_title(rotation.get('kind'))}) is in phase {state.phase}.", "",
             node_line]
    if ssh_clients:
        lines.append(f"• Clients over SSH ({', '.join(ssh_clients)}): their previous files come back, and their "
                     "restart command runs.")
    lines.append("• The local ca.crt goes back to the bundle from before the rotation.")
    lines.append(_local_line(state))
    if manual:
        lines.append(f"• Manually delivered clients ({', '.join(manual)}): certrotate cannot reach them, so what they "
                     "were given you take back by hand:")
        lines += [f"    – {label}: {sentence}" for label, sentence in discard.manual_clients(state)]
    lines += ["", "The rotation is recorded in the history as rolled back and the phase returns to idle."]
    return "\n".join(lines)


def _local_line(state: State) -> str:
    """What goes away on this machine: the abandoned new CA key, the staged leaves, the exports."""
    ws = Workspace(state.base_dir, state.inventory.cluster)
    keys = [ws.relative(path) for path in discard.abandoned_ca_files(state) if path.suffix == ".key"]
    what = f"the new CA key {', '.join(keys)} and its certificate" if keys else "the new certificates"
    staged = ws.relative(ws.rotation_dir(RotationRecord(state.rotation).id))
    return (f"• On this machine: {what}, the certificates and keys staged in {staged}/ and the files exported for "
            "clients delivered by hand are removed (nothing will ever use them).")


class RollbackScreen(ModalScreen[bool]):
    CSS_PATH = "dialogs.tcss"

    BINDINGS = [
        Binding("y", "roll_back", "Roll back"),
        Binding("escape", "cancel", "Cancel"),  # never n: on the overview n is Run next
    ]

    def __init__(self, state: State) -> None:
        super().__init__()
        self.summary = rollback_summary(state)

    def compose(self) -> ComposeResult:
        with Vertical(id="rollback-dialog", classes="dialog"):
            yield Label("Roll back the rotation?", classes="dialog-title")
            yield Static(self.summary, id="rollback-summary", classes="dialog-text", markup=False)
            with Horizontal(classes="dialog-buttons"):
                yield Button("Roll back (y)", id="rollback-yes", variant="error")
                yield Button("Cancel (esc)", id="rollback-no", variant="primary")

    @on(Button.Pressed, "#rollback-yes")
    def action_roll_back(self) -> None:
        self.dismiss(True)

    @on(Button.Pressed, "#rollback-no")
    def action_cancel(self) -> None:
        self.dismiss(False)
