"""First run: no state file yet. Forms for the cluster, its nodes and its clients; writes the file.

A node or client already added goes back into its form with enter (or ctrl+e) on its row;
saving it replaces the entry in place, under the same checks as adding it.

Every check is core's (core.config.inventory.parse_inventory), so the wizard and a hand-written
file are held to the same rules and the operator reads the same sentence naming the field.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import Button, DataTable, Footer, Header, Input, Label, Select, Static

from core.config.inventory import PROFILES
from core.config.record import client_key_for
from core.errors import CertRotateError
from core.pki.rules import KEY_TYPES

NODE_FIELDS = (
    ("name", "Name", "e.g. n1"),
    ("ssh_host", "SSH host", "e.g. 10.0.0.1, or an ~/.ssh/config alias"),
    ("ssh_port", "SSH port", "22"),
    ("ssh_user", "SSH user", "optional, e.g. cockroach"),
    ("ssh_key", "SSH key", "optional: a key file; else ssh-agent and ~/.ssh/config"),
    ("known_hosts", "known_hosts", "optional; ~/.ssh/known_hosts otherwise"),
    ("certs_dir", "Certs dir", "e.g. /var/lib/cockroach/certs"),
    ("addresses", "Addresses", "SANs, comma separated, e.g. n1.example.com, 10.0.0.1"),
    ("sql_addr", "SQL address", "e.g. 10.0.0.1:26257 (probed over TLS)"),
    ("reload", "Reload", "optional; the profile's default otherwise"),
)
CLIENT_FIELDS = (
    ("user", "User", "e.g. root (the certificate's CN)"),
    ("ssh_host", "SSH host", "optional: deliver over SSH; else exported for you"),
    ("certs_dir", "Certs dir", "with an SSH host, e.g. /etc/app/certs"),
    ("restart", "Restart", "optional, run after delivery"),
)


def _form_values(screen: Screen, prefix: str, fields: tuple[tuple[str, str, str], ...]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for key, _, _ in fields:
        text = screen.query_one(f"#{prefix}-{key.replace('_', '-')}", Input).value.strip()
        if not text:
            continue
        if key == "ssh_port":
            values[key] = int(text) if text.isdigit() else text
        elif key == "addresses":
            values[key] = [part.strip() for part in text.split(",") if part.strip()]
        else:
            values[key] = text
    return values


def _form_text(key: str, value: Any) -> str:
    """The text a form field shows for a value `_form_values` read from it."""
    if key == "addresses":
        return ", ".join(value)
    return str(value)


# The autopilot choices offered: weekday nights is what most operators pick for certificate work.
AUTOPILOT_CHOICES = (
    ("Weekday nights, 02:00-05:00 UTC (suggested)", "nights"),
    ("Any time", "any"),
    ("Off: I run each step myself (n on the overview)", "off"),
)


def autopilot_table(choice: str, notify: str) -> dict[str, Any] | None:
    """The [autopilot] table for a first-run choice; renewal margins are left to follow the cluster."""
    if choice == "off":
        return None
    from core.config.autopilot_policy import policy_to_toml, suggested
    from core.config.inventory import ClusterConfig

    table = policy_to_toml(suggested(ClusterConfig(name="new"))) if choice == "nights" else {}
    targets = [part.strip() for part in notify.split(",") if part.strip()]
    if targets:
        table["notify"] = targets
    return table


def check_inventory(data: dict[str, Any], source: str) -> None:
    """Raise the one-sentence BadInput core gives for a hand-written file with this content."""
    from core.config.autopilot_policy import parse_policy
    from core.config.inventory import parse_inventory

    inventory = parse_inventory(data, "", source)
    parse_policy(data, "", source, inventory.cluster)


def write_state_file(path: Path, data: dict[str, Any]) -> None:
    """The state file, and the directory for the CA key (`safe/`), made 0700 if it is not there yet."""
    from core.config import state as state_mod
    from core.config.autopilot_policy import parse_policy
    from core.config.inventory import parse_inventory, resolve_local

    inventory = parse_inventory(data, "", str(path))
    policy = parse_policy(data, "", str(path), inventory.cluster)
    state_mod.save(state_mod.State(path=path, inventory=inventory, policy=policy))
    make_key_dir(resolve_local(inventory.cluster.ca_key, path.parent).parent)


def make_key_dir(directory: Path) -> None:
    """Where the operator puts the CA key: the owner's only (mkdir's mode is narrowed by the umask, so chmod)."""
    if directory.exists():
        return  # the operator's own directory keeps its mode; doctor judges the key file itself
    try:
        directory.mkdir(parents=True, mode=0o700)
        os.chmod(directory, 0o700)
    except OSError as error:
        from core.errors import BadInput

        raise BadInput(f"Cannot create {directory} for the CA key: {error.strerror}.") from None


class FirstRunScreen(Screen[str]):
    """Pushed over the (empty) home screen; dismissed with a sentence once the file is written."""

    CSS_PATH = "forms.tcss"

    BINDINGS = [
        Binding("ctrl+n", "add_node", "Add node"),
        Binding("ctrl+l", "add_client", "Add client"),
        Binding("ctrl+e", "edit", "Edit selected", tooltip="Put the selected node or client back into its form"),
        Binding("ctrl+r", "remove", "Remove selected"),
        Binding("ctrl+s", "write", "Write state file"),
    ]

    def __init__(self, state_path: Path) -> None:
        super().__init__()
        self.state_path = state_path
        self.nodes: list[dict[str, Any]] = []
        self.clients: list[dict[str, Any]] = []
        self.editing: dict[str, int | None] = {"node": None, "client": None}  # index in the list being edited

    def compose(self) -> ComposeResult:
        yield Header(icon="◆")
        with VerticalScroll(id="first-run"):
            yield Static(Text.assemble(("New cluster", "bold"), f" — no state file at {self.state_path} yet. "
                                       "Describe the cluster; certrotate writes the file (0600) when you press ctrl+s."),
                         id="first-run-intro")
            yield Label("Cluster", classes="section-title")
            with Horizontal(classes="form-row"):
                yield Label("Name", classes="form-label")
                yield Input(placeholder="e.g. prod", id="cluster-name")
                yield Label("Profile", classes="form-label")
                yield Select([(p, p) for p in PROFILES], value="cockroach", allow_blank=False, id="cluster-profile")
            with Horizontal(classes="form-row"):
                yield Label("Key type", classes="form-label")
                yield Select([(k, k) for k in KEY_TYPES], value="rsa-2048", allow_blank=False, id="cluster-key-type")
                yield Label("Leaf delay", classes="form-label")
                yield Input("30", id="cluster-leaf-delay", placeholder="days between trust and leaf, e.g. 30",
                            type="integer")
                yield Label("days", classes="form-unit")
            with Horizontal(classes="form-row"):
                yield Label("Autopilot", classes="form-label")
                yield Select(AUTOPILOT_CHOICES, value="nights", allow_blank=False, id="autopilot-windows")
                yield Label("Notify", classes="form-label")
                yield Input(id="autopilot-notify",
                            placeholder="optional: webhook:https://…, command:/path, or apprise URLs (comma separated)")
            yield Label("Nodes", classes="section-title")
            yield DataTable(id="node-list", cursor_type="row")
            for key, label, hint in NODE_FIELDS:
                with Horizontal(classes="form-row"):
                    yield Label(label, classes="form-label")
                    yield Input(placeholder=hint, id=f"node-{key.replace('_', '-')}",
                                value="22" if key == "ssh_port" else "")
            with Horizontal(classes="form-buttons"):
                yield Button("Add node (ctrl+n)", id="add-node", variant="primary")
            yield Label("Clients", classes="section-title")
            yield DataTable(id="client-list", cursor_type="row")
            for key, label, hint in CLIENT_FIELDS:
                with Horizontal(classes="form-row"):
                    yield Label(label, classes="form-label")
                    yield Input(placeholder=hint, id=f"client-{key.replace('_', '-')}")
            with Horizontal(classes="form-buttons"):
                yield Button("Add client (ctrl+l)", id="add-client", variant="primary")
            yield Static(id="first-run-error")
            with Horizontal(classes="form-buttons"):
                yield Button("Write state file (ctrl+s)", id="write-state", variant="success")
        yield Footer()

    def on_mount(self) -> None:
        nodes = self.query_one("#node-list", DataTable)
        for label, key in (("Name", "name"), ("SSH host", "ssh_host"), ("Certs dir", "certs_dir"),
                           ("SQL address", "sql_addr")):
            nodes.add_column(label, key=key)
        clients = self.query_one("#client-list", DataTable)
        for label, key in (("User", "user"), ("Delivery", "delivery")):
            clients.add_column(label, key=key)
        self.query_one("#cluster-name", Input).focus()

    def filled(self) -> bool:
        """True once the operator typed or added anything: quitting would lose it (the app asks first)."""
        defaults = {"cluster-leaf-delay": "30", "node-ssh-port": "22"}
        typed = any(field.value.strip() != defaults.get(field.id or "", "") for field in self.query(Input))
        return typed or bool(self.nodes or self.clients)

    # -- building the inventory -------------------------------------------------------------

    def cluster_data(self) -> dict[str, Any]:
        delay = self.query_one("#cluster-leaf-delay", Input).value.strip()
        data: dict[str, Any] = {
            "profile": self.query_one("#cluster-profile", Select).value,
            "key_type": self.query_one("#cluster-key-type", Select).value,
            "leaf_delay_days": int(delay) if delay.isdigit() else delay,
        }
        name = self.query_one("#cluster-name", Input).value.strip()
        if name:
            data["name"] = name
        return data

    def inventory_data(self, nodes: list[dict[str, Any]] | None = None,
                       clients: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        data: dict[str, Any] = {"cluster": self.cluster_data(), "nodes": self.nodes if nodes is None else nodes}
        chosen = self.clients if clients is None else clients
        if chosen:
            data["clients"] = chosen
        autopilot = autopilot_table(self.query_one("#autopilot-windows", Select).value,
                                    self.query_one("#autopilot-notify", Input).value)
        if autopilot is not None:
            data["autopilot"] = autopilot
        return data

    def complain(self, sentence: str) -> None:
        self.query_one("#first-run-error", Static).update(Text(sentence, style="bold red"))

    def _checked(self, data: dict[str, Any]) -> bool:
        try:
            check_inventory(data, str(self.state_path))
        except CertRotateError as error:
            self.complain(str(error))
            return False
        self.query_one("#first-run-error", Static).update("")
        return True

    # -- actions ----------------------------------------------------------------------------

    def _with(self, entries: list[dict[str, Any]], entry: dict[str, Any], kind: str) -> list[dict[str, Any]]:
        """The list with `entry` added, or in place of the one being edited."""
        index = self.editing[kind]
        if index is None:
            return entries + [entry]
        return entries[:index] + [entry] + entries[index + 1:]

    @on(Button.Pressed, "#add-node")
    def action_add_node(self) -> None:
        node = _form_values(self, "node", NODE_FIELDS)
        nodes = self._with(self.nodes, node, "node")
        candidate = {**self.inventory_data(nodes=nodes),
                     "cluster": {**self.cluster_data(), "name": self.cluster_data().get("name", "unnamed")}}
        if not self._checked(candidate):
            return
        self.nodes = nodes
        self._show_nodes(select=node["name"])
        self._end_edit("node", NODE_FIELDS)

    @on(Button.Pressed, "#add-client")
    def action_add_client(self) -> None:
        client = _form_values(self, "client", CLIENT_FIELDS)
        clients = self._with(self.clients, client, "client")
        nodes = self.nodes or [{"name": "placeholder", "ssh_host": "placeholder", "certs_dir": "/placeholder"}]
        candidate = {**self.inventory_data(nodes=nodes, clients=clients),
                     "cluster": {**self.cluster_data(), "name": self.cluster_data().get("name", "unnamed")}}
        if not self._checked(candidate):
            return
        self.clients = clients
        self._show_clients(select=client_key_for(client["user"], client.get("ssh_host")))
        self._end_edit("client", CLIENT_FIELDS)

    def _show_nodes(self, select: str | None = None) -> None:
        table = self.query_one("#node-list", DataTable)
        table.clear()
        for node in self.nodes:
            table.add_row(node["name"], node["ssh_host"], node["certs_dir"], node.get("sql_addr", ""), key=node["name"])
        if select is not None:
            table.move_cursor(row=table.get_row_index(select))

    def _show_clients(self, select: str | None = None) -> None:
        table = self.query_one("#client-list", DataTable)
        table.clear()
        for client in self.clients:
            delivery = f"over SSH to {client['ssh_host']}:{client['certs_dir']}" if "ssh_host" in client else "exported"
            table.add_row(client["user"], delivery, key=client_key_for(client["user"], client.get("ssh_host")))
        if select is not None:
            table.move_cursor(row=table.get_row_index(select))

    def _end_edit(self, kind: str, fields: tuple[tuple[str, str, str], ...]) -> None:
        """Empty the form and turn its button back into "Add"."""
        self.editing[kind] = None
        for key, _, _ in fields:
            self.query_one(f"#{kind}-{key.replace('_', '-')}", Input).value = "22" if key == "ssh_port" else ""
        self._label_button(kind, f"Add {kind}")

    def _label_button(self, kind: str, text: str) -> None:
        button = self.query_one(f"#add-{kind}", Button)
        button.label = f"{text} ({'ctrl+n' if kind == 'node' else 'ctrl+l'})"
        button.refresh(layout=True)  # Button.label does not re-measure the button's width by itself

    def _selected(self) -> tuple[str, int] | None:
        """("node" or "client", its index) for the row under the cursor of the focused list."""
        focused = self.focused
        if not isinstance(focused, DataTable) or focused.id not in ("node-list", "client-list") \
                or not focused.row_count:
            self.complain("Select a node or a client in its list first.")
            return None
        return ("node" if focused.id == "node-list" else "client"), focused.cursor_row

    @on(DataTable.RowSelected, "#node-list, #client-list")
    def action_edit(self) -> None:
        selected = self._selected()
        if selected is None:
            return
        kind, index = selected
        entry, fields = (self.nodes[index], NODE_FIELDS) if kind == "node" else (self.clients[index], CLIENT_FIELDS)
        for key, _, _ in fields:
            self.query_one(f"#{kind}-{key.replace('_', '-')}", Input).value = _form_text(key, entry.get(key, ""))
        self.editing[kind] = index
        name = entry["name"] if kind == "node" else entry["user"]
        self._label_button(kind, f"Save {kind} {name}")
        self.query_one(f"#{kind}-{fields[0][0]}", Input).focus()
        self.query_one("#first-run-error", Static).update(
            Text(f"Editing {kind} {name}: change its fields, then save it.", style="italic"))

    def action_remove(self) -> None:
        selected = self._selected()
        if selected is None:
            return
        kind, index = selected
        if kind == "node":
            del self.nodes[index]
            self._show_nodes()
        else:
            del self.clients[index]
            self._show_clients()
        if self.editing[kind] is not None:
            self._end_edit(kind, NODE_FIELDS if kind == "node" else CLIENT_FIELDS)

    @on(Button.Pressed, "#write-state")
    def action_write(self) -> None:
        data = self.inventory_data()
        if self._checked(data):
            self.write(data)

    @work(group="core", exit_on_error=False)
    async def write(self, data: dict[str, Any]) -> None:
        from core.config import state as state_mod

        app = self.app
        async with app.core_gate:
            try:
                await asyncio.to_thread(write_state_file, self.state_path, data)
                state = await asyncio.to_thread(state_mod.load, self.state_path)
            except CertRotateError as error:
                self.complain(str(error))
                return
        app.state = state
        timer = (" Autopilot is set: `certrotate autopilot install --systemd` prints the timer that runs it."
                 if state.policy is not None else "")
        self.dismiss(f"Wrote {self.state_path}. Press s: first-time setup for a cluster without certificates, "
                     f"or a CA rotation once certs/ca.crt and safe/ca.key are in place.{timer}")
