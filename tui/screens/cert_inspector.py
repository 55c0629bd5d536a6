"""Certificate inspector: subject, SANs, issuer, validity and fingerprint of a local file or of
the certificate chain a node serves. Key files are refused by name, never shown."""

from __future__ import annotations

import asyncio
from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import Button, Footer, Header, Input, Label, Select, Static

from core.config.inventory import NodeConfig, resolve_local
from core.config.state import State
from core.errors import CertRotateError
from tui.widgets.cert_view import CertView


class CertInspectorScreen(Screen[None]):
    CSS_PATH = "forms.tcss"

    BINDINGS = [
        Binding("ctrl+o", "open_file", "Open file"),
        Binding("ctrl+s", "probe_node", "Served by node"),
        Binding("escape", "back", "Back"),
    ]

    def __init__(self, state: State, node: NodeConfig | None = None) -> None:
        super().__init__()
        self.state = state
        self.node = node
        self.local_certs = resolve_local(state.inventory.cluster.local_certs_dir, state.base_dir)

    def compose(self) -> ComposeResult:
        nodes = [(n.name, n.name) for n in self.state.inventory.nodes if n.sql_addr]
        yield Header(icon="◆")
        with Horizontal(id="inspect-file-row", classes="form-row"):
            yield Label("Local file", classes="form-label")
            yield Input(str(self.local_certs / "ca.crt"), id="cert-path", placeholder="path to a .crt file")
            yield Button("Open (ctrl+o)", id="open-cert")
        with Horizontal(id="inspect-node-row", classes="form-row"):
            yield Label("Served by", classes="form-label")
            yield Select(nodes, id="node-select", allow_blank=False,
                         value=self.node.name if self.node and self.node.sql_addr else nodes[0][1]) if nodes else \
                Static("no node has a sql_addr to probe")
            yield Button("Probe (ctrl+s)", id="probe-node", disabled=not nodes)
        yield Static(id="cert-error")
        with VerticalScroll(id="cert-scroll"):
            yield CertView(id="cert-view")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(CertView).now = self.app.now()
        if self.node is not None and self.node.sql_addr:
            self.action_probe_node()
        else:
            self.action_open_file()

    def action_back(self) -> None:
        self.dismiss(None)

    @on(Input.Submitted, "#cert-path")
    @on(Button.Pressed, "#open-cert")
    def action_open_file(self) -> None:
        path = Path(self.query_one("#cert-path", Input).value.strip()).expanduser()
        if not path.is_absolute():
            path = self.state.base_dir / path
        self.inspect(str(path), "file")

    @on(Button.Pressed, "#probe-node")
    def action_probe_node(self) -> None:
        selects = self.query("#node-select")
        if not selects:
            return
        name = selects.first(Select).value
        node = next(n for n in self.state.inventory.nodes if n.name == name)
        self.inspect(node.sql_addr, f"served by {node.name}")

    @work(exclusive=True, group="inspect", exit_on_error=False)
    async def inspect(self, target: str, how: str) -> None:
        from core.diagnose import cert_info

        error_line = self.query_one("#cert-error", Static)
        view = self.query_one(CertView)
        try:
            if how == "file":
                infos = await asyncio.to_thread(cert_info.read_certificate_file, Path(target))
                source = target
            else:
                infos = await asyncio.to_thread(cert_info.served_certificates, target)
                source = f"{target} ({how})"
        except CertRotateError as error:
            error_line.update(Text(str(error), style="bold red"))
            view.certificates = ()
            return
        error_line.update("")
        view.source = source
        view.certificates = tuple(infos)
