"""The operator confirms a host's SSH key before certrotate ever logs in to it."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from textual import on
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label, Static

if TYPE_CHECKING:  # paramiko is imported by the worker that logs in, not before the first paint
    from core.config.state import State
    from core.remote.known_hosts import UnknownHostKey
    from core.remote.ssh import SshPool

MAX_ROUNDS = 5


class HostKeyScreen(ModalScreen[bool]):
    """Dismissed with True when the operator trusts the key, False when not."""

    CSS_PATH = "dialogs.tcss"

    BINDINGS = [
        Binding("y", "trust", "Trust this key"),
        Binding("escape,n", "reject", "Do not trust"),
    ]

    def __init__(self, error: UnknownHostKey) -> None:
        super().__init__()
        self.error = error

    def compose(self) -> ComposeResult:
        error = self.error
        with Vertical(id="host-key-dialog", classes="dialog"):
            yield Label("Unknown SSH host key", classes="dialog-title")
            yield Static(
                f"Host:         {error.host} ({error.host_key_name})\n"
                f"Key type:     {error.key_type}\n"
                f"Fingerprint:  {error.fingerprint}\n"
                f"known_hosts:  {error.known_hosts}",
                id="host-key-facts", markup=False,
            )
            yield Static(
                "certrotate has never logged in to this host. Compare the fingerprint with the host's own key "
                "(on the host: ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub) before trusting it; trusting adds one "
                "line to known_hosts.",
                classes="dialog-text",
            )
            with Horizontal(classes="dialog-buttons"):
                yield Button("Trust this key (y)", id="trust-key", variant="warning")
                yield Button("Do not trust (n)", id="reject-key", variant="primary")

    @on(Button.Pressed, "#trust-key")
    def action_trust(self) -> None:
        self.dismiss(True)

    @on(Button.Pressed, "#reject-key")
    def action_reject(self) -> None:
        self.dismiss(False)


async def settle_host_keys(app: App, state: State, pool: SshPool, declined: set[str] | None = None) -> bool:
    """Ask about every host whose key is unknown; True once all are known, False if one was declined.

    Call from a worker (it waits for the operator's answer). Keys declined before (in
    `declined`) are not asked again; they make this return False.
    """
    for _ in range(MAX_ROUNDS):
        unknown = await asyncio.to_thread(_unknown, state, pool)
        if not unknown:
            return True
        for error in unknown:
            if declined is not None and error.fingerprint in declined:
                return False
            if getattr(app, "exit_pending", False) or not await app.push_screen_wait(HostKeyScreen(error)):
                if declined is not None:
                    declined.add(error.fingerprint)
                return False
            await asyncio.to_thread(error.trust)
            app.notify(f"Trusted {error.key_type} key {error.fingerprint} of {error.host}.", title="known_hosts")
    return False


def _unknown(state: State, pool: SshPool) -> list[UnknownHostKey]:
    from tui.hosts import unknown_host_keys

    return unknown_host_keys(state, pool)
