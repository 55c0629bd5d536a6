"""Install a UI certificate for the DB Console: pick the pair, see every check, then confirm.

The operator brings ui.crt (with its intermediates) and ui.key from a public or
organisational CA. The paths come from the inventory (`[cluster] ui_cert`, `ui_key`) or
are typed or picked in the file tree. Every check is core's (core.rotation.kinds.ui_pair.check_files):
key pair, validity, serverAuth, chain order, the key file's permissions, and whether the
certificate covers each node's http_addr. Install is offered only when every check passed
for the paths shown; the home screen then starts the `ui` rotation and runs it on the
run-step screen, node by node.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import Button, DataTable, DirectoryTree, Footer, Header, Input, Label, Static

from core.config.state import State
from core.errors import CertRotateError
from tui.widgets.pem_tree import PemFileTree

RESULT_WIDTH = 90  # the whole sentence of the first failure is shown under the table
CHECK_TITLES = {
    "permissions": "Key file permissions",
    "pem": "Files parse",
    "key": "Key matches certificate",
    "validity": "Validity",
    "usage": "Server use (EKU)",
    "chain": "Chain order",
    "san": "Covers http_addr",
    "http_addr": "http_addr known",
}


def check_files(state_path: Path, cert_path: str, key_path: str):
    """In a worker thread: the state file afresh, then core's checks of the pair (core.rotation.kinds.ui_pair.Checked)."""
    from core.config import state as state_mod
    from core.rotation.kinds import ui_pair

    return ui_pair.check_files(state_mod.load(state_path), cert_path, key_path)


class UiCertScreen(Screen[tuple[str, str] | None]):
    """Dismissed with (cert path, key path) to install, as the operator gave them, or None."""

    CSS_PATH = "forms.tcss"

    DEFAULT_CSS = """
    UiCertScreen #ui-cert-form { padding: 0 1; }
    UiCertScreen #ui-intro { margin-bottom: 1; }
    UiCertScreen .form-row { height: auto; }
    UiCertScreen .form-label { width: 14; padding: 1 1 0 0; }
    UiCertScreen .form-row Input { width: 1fr; }
    UiCertScreen #ui-browse { height: 10; border: round $panel-lighten-2; }
    UiCertScreen #ui-checks { height: auto; max-height: 14; }
    UiCertScreen #ui-verdict { margin: 1 0; height: auto; }
    UiCertScreen #ui-buttons { height: auto; }
    UiCertScreen #ui-buttons Button { margin-right: 2; }
    """

    BINDINGS = [
        Binding("ctrl+r", "check", "Check again"),
        Binding("ctrl+s", "install", "Install"),
        Binding("escape", "cancel", "Cancel"),
    ]

    def __init__(self, state: State) -> None:
        super().__init__()
        self.state = state
        self.checked_for: tuple[str, str] | None = None  # the paths the shown checks are about
        self.ready = False  # every check passed for `checked_for`
        self.checks_done = 0  # finished check runs, for anyone waiting on one

    def compose(self) -> ComposeResult:
        cluster = self.state.inventory.cluster
        nodes = self.state.inventory.nodes
        yield Header(icon="◆")
        with VerticalScroll(id="ui-cert-form"):
            yield Static(Text.assemble(
                ("Install a UI certificate", "bold"),
                f" for the DB Console of {cluster.name}: your own ui.crt (with intermediates) and ui.key from a public "
                f"or organisational CA. They are checked here; nothing is uploaded until you install. Then each of the "
                f"{len(nodes)} nodes gets them in turn, canary first, and must serve the new certificate on its "
                "http_addr, or gets its previous files back and the rollout stops. Paths are relative to "
                f"{self.state.base_dir}."), id="ui-intro")
            with Horizontal(classes="form-row"):
                yield Label("Certificate", classes="form-label")
                yield Input(cluster.ui_cert or "", placeholder="ui/ui.crt", id="ui-cert-path")
            with Horizontal(classes="form-row"):
                yield Label("Key", classes="form-label")
                yield Input(cluster.ui_key or "", placeholder="ui/ui.key (mode 0600)", id="ui-key-path")
            yield Label("Browse (enter on a .key fills Key, any other file fills Certificate)", classes="section-title")
            yield PemFileTree(self.state.base_dir, id="ui-browse")
            yield Label("Checks", classes="section-title")
            yield DataTable(id="ui-checks", cursor_type="none")
            yield Static(id="ui-verdict")
            with Horizontal(id="ui-buttons"):
                yield Button("Check again (ctrl+r)", id="ui-check")
                yield Button("Install (ctrl+s)", id="ui-install", variant="success", disabled=True)
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#ui-checks", DataTable)
        table.add_column("", key="mark")
        table.add_column("Check", key="check")
        table.add_column("Node", key="node")
        table.add_column("Result", key="result")
        if self.paths() is not None:
            self.run_checks()
        else:
            self.say("Give the certificate and key files, then press enter.", error=False)

    # -- inputs -----------------------------------------------------------------------------

    def paths(self) -> tuple[str, str] | None:
        cert = self.query_one("#ui-cert-path", Input).value.strip()
        key = self.query_one("#ui-key-path", Input).value.strip()
        return (cert, key) if cert and key else None

    @on(Input.Changed)
    def forget_checks(self) -> None:
        if self.checked_for is not None and self.paths() != self.checked_for:
            self.set_ready(False)
            self.say("The paths changed; press enter (or ctrl+r) to check them.", error=False)

    @on(Input.Submitted)
    def submitted(self) -> None:
        self.action_check()

    @on(DirectoryTree.FileSelected)
    def picked(self, event: DirectoryTree.FileSelected) -> None:
        path = Path(event.path)
        try:
            shown = str(path.relative_to(self.state.base_dir))
        except ValueError:
            shown = str(path)
        target = "#ui-key-path" if path.suffix == ".key" else "#ui-cert-path"
        self.query_one(target, Input).value = shown
        if self.paths() is not None:
            self.action_check()

    @on(Button.Pressed, "#ui-check")
    def check_pressed(self) -> None:
        self.action_check()

    @on(Button.Pressed, "#ui-install")
    def install_pressed(self) -> None:
        self.action_install()

    # -- actions ----------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "install":
            return True if self.ready and self.paths() == self.checked_for else None
        return True

    def action_check(self) -> None:
        if self.paths() is None:
            self.say("Give both the certificate and the key file.", error=True)
            return
        self.run_checks()

    def action_install(self) -> None:
        if self.ready and self.paths() == self.checked_for:
            self.dismiss(self.checked_for)

    def action_cancel(self) -> None:
        self.dismiss(None)

    # -- checking ---------------------------------------------------------------------------

    @work(exclusive=True, group="ui-check", exit_on_error=False)
    async def run_checks(self) -> None:
        paths = self.paths()
        if paths is None:
            return
        self.set_ready(False)
        self.say("Checking…", error=False)
        table = self.query_one("#ui-checks", DataTable)
        try:
            checked = await asyncio.to_thread(check_files, self.app.state_path, *paths)
        except CertRotateError as error:
            table.clear()
            self.checked_for = paths
            self.say(str(error), error=True)
            self.checks_done += 1
            return
        table.clear()
        for number, finding in enumerate(checked.findings):
            mark = Text("✓", style="green") if finding.ok else Text("×", style="bold red")
            text = finding.message if len(finding.message) <= RESULT_WIDTH else finding.message[:RESULT_WIDTH - 1] + "…"
            table.add_row(mark, CHECK_TITLES.get(finding.check, finding.check), finding.node or "",
                          Text(text, style="" if finding.ok else "red"), key=str(number))
        self.checked_for = paths
        if checked.problem:
            self.say(checked.problem, error=True)
        else:
            self.set_ready(True)
            nodes = len(self.state.inventory.nodes)
            self.say(f"Every check passed. Press ctrl+s to install on {nodes} node{'s' * (nodes != 1)}, canary first.",
                     error=False)
        self.checks_done += 1

    def set_ready(self, ready: bool) -> None:
        self.ready = ready
        self.query_one("#ui-install", Button).disabled = not ready
        self.refresh_bindings()

    def say(self, sentence: str, *, error: bool) -> None:
        self.query_one("#ui-verdict", Static).update(Text(sentence, style="bold red" if error else "green"))
