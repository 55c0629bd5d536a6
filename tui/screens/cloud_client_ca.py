"""Cloud client CA: the client CAs of a directory (as `certrotate cloud client-ca` keeps it), their
expiry, and the command that uploads the bundle to a CockroachDB Cloud cluster.

Read-only on purpose: creating or retiring a client CA changes what a production cluster
trusts, so it stays a deliberate command (`certrotate cloud client-ca ...`), shown here to copy.
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
from textual.widgets import Button, DataTable, Footer, Header, Input, Label, Static

from core.errors import CertRotateError
from core.tools import cloud

DEFAULT_DIR = "cloud-client-ca"
COLUMNS = (("Fingerprint", "fingerprint"), ("Expires", "expires"), ("Days left", "days"), ("Role", "role"),
           ("Key", "key"), ("Subject", "subject"))


class CloudClientCaScreen(Screen[None]):
    CSS_PATH = "forms.tcss"

    DEFAULT_CSS = """
    CloudClientCaScreen #client-ca-table { height: auto; max-height: 12; margin: 1 1 0 1; }
    CloudClientCaScreen #client-ca-error { height: auto; padding: 0 2; }
    CloudClientCaScreen #client-ca-upload { height: auto; margin: 1 1 0 1; padding: 0 1;
                                            border: round $panel-lighten-2; }
    """
    BINDINGS = [
        Binding("ctrl+o", "show", "Show"),
        Binding("escape", "back", "Back"),
    ]

    def __init__(self, directory: Path) -> None:
        super().__init__()
        self.directory = directory
        self.shown: cloud.ClientCaDir | None = None

    def compose(self) -> ComposeResult:
        yield Header(icon="◆")
        with Horizontal(classes="form-row"):
            yield Label("Directory", classes="form-label")
            yield Input(str(self.directory), id="client-ca-dir", placeholder="the --dir of certrotate cloud client-ca")
            yield Button("Show (ctrl+o)", id="client-ca-show")
        with Horizontal(classes="form-row"):
            yield Label("Cluster ID", classes="form-label")
            yield Input("", id="client-ca-cluster", placeholder="optional: fills the upload command's URL")
        yield Static(id="client-ca-error")
        yield DataTable(id="client-ca-table", cursor_type="row", zebra_stripes=True)
        with VerticalScroll():
            yield Static(id="client-ca-upload")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        for label, key in COLUMNS:
            table.add_column(label, key=key)
        self.action_show()

    def action_back(self) -> None:
        self.dismiss(None)

    @on(Input.Submitted)
    @on(Button.Pressed, "#client-ca-show")
    def action_show(self) -> None:
        text = self.query_one("#client-ca-dir", Input).value.strip()
        self.show_directory(Path(text).expanduser() if text else self.directory,
                            self.query_one("#client-ca-cluster", Input).value.strip() or None)

    @work(exclusive=True, group="client-ca", exit_on_error=False)
    async def show_directory(self, directory: Path, cluster_id: str | None) -> None:
        error = self.query_one("#client-ca-error", Static)
        table = self.query_one(DataTable)
        upload = self.query_one("#client-ca-upload", Static)
        try:
            state = await asyncio.to_thread(cloud.read_client_ca_dir, directory)
            command = cloud.upload_command(state.bundle_path, cluster_id, first_time=len(state.cas) <= 1)
        except CertRotateError as failure:
            error.update(Text(str(failure), style="bold red"))
            table.clear()
            upload.update("")
            self.shown = None
            return
        error.update("")
        self.shown = state
        now = self.app.now()
        table.clear()
        for index, ca in enumerate(state.cas):
            role = "newest: signs client certs" if index == 0 else "kept for the transition"
            if ca.expired(now):
                role = "EXPIRED"
            days = (ca.not_after - now).days
            table.add_row(ca.short, f"{ca.not_after:%Y-%m-%d}", str(days), role,
                          "in directory" if ca.key_path else "not here", ca.subject, key=ca.fingerprint)
        if not state.cas:
            upload.update(Text(f"No client CA in {directory} yet. Create one with:\n"
                               f"  certrotate cloud client-ca --dir {directory}"))
            return
        method_note = ("First upload: POST (use PATCH if the cluster already has a client CA)." if len(state.cas) <= 1
                       else "Update: PATCH (use POST if the cluster has no client CA yet).")
        lines = [f"Upload {state.bundle_path} (the API key is read from ${cloud.API_KEY_VARIABLE}). {method_note}",
                 "", command]
        if len(state.cas) > 1:
            lines += ["", "Once every client uses a certificate from the newest CA, retire the older one(s):"]
            lines += [f"  certrotate cloud client-ca --dir {directory} --retire {ca.short}" for ca in state.cas[1:]]
        upload.update(Text("\n".join(lines)))
