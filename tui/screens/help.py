"""Help: how a rotation goes, and every key of the screen it was opened from."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Label, Markdown

GUIDE = """\
A **CA rotation** has four phases:

1. **Trust** — a new CA is generated; the combined bundle (new CA first, then the old) goes to every
   node, which is reloaded and must then trust the new CA while serving its current certificate.
   Clients get the bundle too (over SSH, or exported for you to deliver and confirm).
2. **Wait** — `leaf_delay_days` after the trust rollout, and until every manual client is confirmed.
3. **Leaf** — new node certificates, node by node, canary first; a node that does not serve its new
   certificate gets its previous files back and the rotation stops. Then new client certificates.
4. **Retire** — the bundle without the old CA goes everywhere; the rotation is recorded in history.

Every step can be **previewed** (the exact files and commands per host) and **rolled back** while the
rotation is in flight. The state file records everything, so quitting is always safe: open the wizard
again and press n, and it resumes where it stopped.

**Start** (`s`) also offers leaf-only rotations, first-time setup, the **UI certificate** (`5`: your own
DB Console certificate, checked against every node, then installed node by node) and, when
`[cluster] client_ca_key` is set, **Rotate the client CA** (`6`: the same phases for `ca-client.crt`).

- `d` **Doctor** — diagnose a node or client: every check, with its cause and fix.
- `o` **OCSP modes** — what `security.ocsp.mode` off / lax / strict do, and strict's lock-out risk.
- **Kubernetes** (`delivery = "kubernetes"`) — certrotate writes each region's Secret manifest and
  stops; `c` shows the manifest path and the kubectl commands (`y` copies them, no key material is
  shown), and you tick the region once it has rolled out.
- `ctrl+p` → **Cloud client CA** — a CockroachDB Cloud cluster's client CAs and the upload command.
"""


class HelpScreen(ModalScreen[None]):
    CSS_PATH = "dialogs.tcss"

    BINDINGS = [Binding("escape,q,f1,question_mark", "close", "Close help")]

    def __init__(self, screen: Screen) -> None:
        super().__init__()
        self.for_screen = screen

    def compose(self) -> ComposeResult:
        rows = ["| Key | Action |", "|---|---|"]
        bindings = list(getattr(self.for_screen, "BINDINGS", [])) + list(self.app.BINDINGS)
        for binding in bindings:
            if not isinstance(binding, Binding) or not binding.description:
                continue
            if binding.action == "time_travel" and not self.app.check_action("time_travel", ()):
                continue
            key = binding.key_display or binding.key.split(",")[0]
            rows.append(f"| `{key}` | {binding.description} |")
        rows.append("| `ctrl+p` | Command palette: every action by name |")
        with VerticalScroll(id="help-dialog", classes="dialog"):
            yield Label("certrotate — help   (Esc closes it)", classes="dialog-title")
            yield Markdown(GUIDE + "\n**Keys on this screen**\n\n" + "\n".join(rows))

    def action_close(self) -> None:
        self.dismiss(None)
