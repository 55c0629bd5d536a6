"""OCSP: what CockroachDB's `security.ocsp.mode` off / lax / strict do, before the operator picks one.

certrotate writes the cluster's `ocsp_url` into every leaf it issues; whether CockroachDB
then asks that responder is the cluster setting's business. `strict` is the dangerous one:
with the responder unreachable every connection is refused, the operator's own included,
so choosing it asks for a way back first. Shown before a rotation starts when `ocsp_url`
is set, and from anywhere with `o` or the command palette.
"""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Label, Markdown, RadioButton, RadioSet, Static

MODES = ("off", "lax", "strict")

GUIDE = """\
CockroachDB asks an OCSP responder whether a certificate was revoked when the cluster setting
`security.ocsp.mode` says so. It finds the responder in each certificate's *Authority Information
Access*, which certrotate fills from `ocsp_url` for every node and client certificate it issues;
certificates issued before `ocsp_url` was set carry no responder.

- **off** (CockroachDB's default): no OCSP check; a revoked certificate works until it expires.
- **lax**: a certificate the responder reports *revoked* is refused; a responder that is down or
  slower than `security.ocsp.timeout` lets the connection through. Start here.
- **strict**: every certificate is presumed invalid until the responder confirms it.
  **If the responder is unreachable, every client and every node connection is refused: you are
  locked out of the cluster**, and a rotation cannot verify any node either.
"""

CONSEQUENCES = {
    "off": "No revocation check. Revoking a leaked client certificate then means rotating client certificates.",
    "lax": "Revoked certificates are refused; an outage of the responder costs nothing but the check.",
    "strict": "Revocation is enforced, and the responder becomes part of every connection: if it is down, "
              "nobody connects. Run lax long enough to trust its availability, and keep an SQL session open "
              "beforehand to run SET CLUSTER SETTING security.ocsp.mode = 'lax' if it fails.",
}


def statement(mode: str) -> str:
    """The SQL the operator runs (certrotate does not change cluster settings)."""
    return f"SET CLUSTER SETTING security.ocsp.mode = '{mode}';"


class OcspScreen(ModalScreen[str | None]):
    """Dismissed with the mode chosen (`off`, `lax`, `strict`), or None when cancelled or closed."""

    CSS_PATH = "dialogs.tcss"

    BINDINGS = [
        Binding("escape", "cancel", "Cancel"),
        Binding("ctrl+s", "proceed", "Continue"),
    ]

    def __init__(self, ocsp_url: str | None, *, before_rotation: bool = False) -> None:
        super().__init__()
        self.ocsp_url = ocsp_url
        self.before_rotation = before_rotation

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="ocsp-dialog", classes="dialog"):
            yield Label("Revocation with OCSP — security.ocsp.mode", classes="dialog-title")
            if self.ocsp_url:
                where = Text.assemble("New certificates name the responder ", (self.ocsp_url, "bold"),
                                      " (ocsp_url in [cluster]).")
            else:
                where = Text("No ocsp_url in [cluster]: certificates certrotate issues name no responder, so only "
                             "off is meaningful. Set ocsp_url before the leaves are issued to use lax or strict.")
            yield Static(where, id="ocsp-url", classes="dialog-text")
            yield Markdown(GUIDE, id="ocsp-guide")
            with RadioSet(id="ocsp-mode"):
                for mode in MODES:
                    yield RadioButton(mode, value=mode == "lax", id=f"ocsp-{mode}")
            yield Static(id="ocsp-consequence", classes="dialog-text")
            yield Checkbox("I keep an SQL session open to switch back to lax if the responder fails",
                           id="ocsp-fallback")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Continue to the rotation (ctrl+s)" if self.before_rotation else "Done (ctrl+s)",
                             id="ocsp-continue", variant="primary")
                yield Button("Cancel (esc)", id="ocsp-cancel")

    def on_mount(self) -> None:
        self.show_mode()

    @property
    def mode(self) -> str:
        pressed = self.query_one(RadioSet).pressed_button
        return MODES[0] if pressed is None else str(pressed.id).removeprefix("ocsp-")

    @on(RadioSet.Changed)
    @on(Checkbox.Changed)
    def show_mode(self) -> None:
        """The consequence of the chosen mode and its SQL; strict only with a way back."""
        mode = self.mode
        text = Text(CONSEQUENCES[mode], style="bold red" if mode == "strict" else "")
        text.append("\nTo set it: ")
        text.append(statement(mode), style="bold")
        self.query_one("#ocsp-consequence", Static).update(text)
        fallback = self.query_one("#ocsp-fallback", Checkbox)
        fallback.display = mode == "strict"
        self.query_one("#ocsp-continue", Button).disabled = mode == "strict" and not fallback.value

    @on(Button.Pressed, "#ocsp-continue")
    def action_proceed(self) -> None:
        if self.query_one("#ocsp-continue", Button).disabled:
            self.notify("Strict mode locks everyone out when the responder is down; tick the fallback session first.",
                        title="Strict OCSP", severity="warning")
            return
        self.dismiss(self.mode)

    @on(Button.Pressed, "#ocsp-cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)
