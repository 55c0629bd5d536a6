"""The wizard asks for an encrypted CA key's passphrase or a token's PIN, in a password field.

What is typed goes to core.signers.credentials, in this process's memory only: never to the
state file, the log on screen, a notification or the journal. A wrong answer is said and
asked again; escape gives up, and the step says why it did not run.
"""

from __future__ import annotations

from textual import on
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Static

from core.errors import SecretNeeded
from core.signers import credentials

MAX_TRIES = 3


class SecretScreen(ModalScreen[str | None]):
    """Dismissed with what was typed, or None (escape)."""

    CSS_PATH = "dialogs.tcss"

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, needed: SecretNeeded) -> None:
        super().__init__()
        self.needed = needed

    def compose(self) -> ComposeResult:
        needed = self.needed
        title = "CA key passphrase" if needed.secret == credentials.PASSPHRASE else "Token PIN"
        what = (f"the passphrase of {needed.source}" if needed.secret == credentials.PASSPHRASE
                else f"the PIN of token {needed.source}")
        with Vertical(id="secret-dialog", classes="dialog"):
            yield Label(title, classes="dialog-title")
            if needed.wrong:
                yield Static(str(needed), id="secret-wrong", classes="dialog-text", markup=False)
            yield Static(f"certrotate needs {what} to sign. It stays in memory while the wizard runs and is written "
                         "nowhere.", classes="dialog-text", markup=False)
            yield Input(password=True, placeholder=title, id="secret-input")
            yield Static("enter: use it   escape: cancel", classes="dialog-hint")

    def on_mount(self) -> None:
        self.query_one("#secret-input", Input).focus()

    @on(Input.Submitted, "#secret-input")
    def submit(self, event: Input.Submitted) -> None:
        self.dismiss(event.value or None)

    def action_cancel(self) -> None:
        self.dismiss(None)


async def ask_secret(app: App, needed: SecretNeeded) -> bool:
    """Ask for the secret `needed` names; True when one was given (the caller tries again)."""
    answer = await app.push_screen_wait(SecretScreen(needed))
    if not answer:
        return False
    credentials.give(needed.secret, answer)
    return True
