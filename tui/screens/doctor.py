"""Doctor: the checks of `certrotate doctor` for one node or client, each finding with its cause and fix.

A node is probed like a client would (chain to the local bundle, expiry, SANs against every
address the inventory uses), its node.crt read over SSH (served ≠ on disk: reload pending),
and, with the CA key at hand, whether it trusts the current CA for clients. A client is its
certificate and key in the operator's local certs dir, presented to the first node in a real
handshake. Below, a client's TLS error message pasted in is explained (core.diagnose.doctor.explain).
"""

from __future__ import annotations

import asyncio
import datetime as dt

from rich.text import Text
from textual import events, on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import Button, Footer, Header, Input, Label, Select, Static

from core.config.state import State
from core.errors import CertRotateError
from tui.view import client_key

LEVEL_STYLES = {"OK": "bold green", "WARN": "bold yellow", "FAIL": "bold red", "SKIP": "dim"}


def targets(state: State) -> list[tuple[str, str]]:
    """(label, value) for the target list: every node, then every client."""
    options = [(f"node {n.name} ({n.sql_addr or 'no sql_addr'})", f"node:{n.name}") for n in state.inventory.nodes]
    options += [(f"client {client_key(c)}", f"client:{c.user}") for c in state.inventory.clients]
    return options


def probe_node_for_clients(state: State):
    """The node a client's certificate is presented to: the first one with an address to probe."""
    return next((n for n in state.inventory.nodes if n.sql_addr), state.inventory.nodes[0])


def run_doctor(state: State, target: str, now: dt.datetime) -> tuple[str, list]:
    """(what was diagnosed, the findings) — in a worker thread: probes, SSH, key files."""
    from core.diagnose import doctor
    from core.remote import remote_files
    from core.remote.ssh import SshPool

    kind, name = target.split(":", 1)
    cluster = state.inventory.cluster
    if kind == "node":
        node, user = state.inventory.node(name), None
        heading = f"node {name}"
    else:
        node, user = probe_node_for_clients(state), name
        heading = f"client {name}: its files in {cluster.local_certs_dir}/, presented to node {node.name}"
    with SshPool() as pool:
        def read_remote(target_node, path: str) -> bytes:
            return remote_files.read_file(pool.session(target_node, state.base_dir), path)

        findings = doctor.doctor_node(node, state.base_dir, cluster.local_certs_dir, cluster.ca_key, now=now,
                                      user=user, read_remote=read_remote if kind == "node" else None,
                                      console=kind == "node")
    if kind == "client":
        findings = [f for f in findings if f.check != "on-disk"]
    return heading, findings


def findings_text(heading: str, findings: list) -> Text:
    """One line per finding; under each warning or failure its cause and its fix."""
    from core.diagnose.advice import advice

    text = Text()
    text.append(f"{heading}\n\n", style="bold")
    for finding in findings:
        text.append(f"{finding.level:<4} ", style=LEVEL_STYLES.get(finding.level, ""))
        text.append(f"{finding.check}: ", style="bold")
        text.append(f"{finding.message}\n")
        explanation = advice(finding)
        if explanation is not None:
            text.append("     Cause: ", style="italic")
            text.append(f"{explanation.cause}\n")
            text.append("     Fix:   ", style="italic")
            text.append(f"{explanation.fix}\n")
    failed = sum(f.level == "FAIL" for f in findings)
    warned = sum(f.level == "WARN" for f in findings)
    verdict = ("All checks passed." if not failed and not warned else
               f"{failed} failure{'s' * (failed != 1)}, {warned} warning{'s' * (warned != 1)}.")
    text.append(f"\n{verdict}", style="bold red" if failed else "bold yellow" if warned else "bold green")
    return text


class DoctorScreen(Screen[None]):
    CSS_PATH = ["forms.tcss", "doctor.tcss"]

    BINDINGS = [
        Binding("ctrl+d", "diagnose", "Run doctor", tooltip="Run every check again on the chosen node or client"),
        Binding("escape", "back", "Back"),
    ]

    def __init__(self, state: State, target: str | None = None) -> None:
        super().__init__()
        self.state = state
        options = targets(state)
        self.options = options
        self.initial = target if target in {value for _, value in options} else options[0][1]
        self.diagnosed = 0  # finished diagnoses, for anyone waiting on one
        self.findings: list = []

    def compose(self) -> ComposeResult:
        yield Header(icon="◆")
        with Horizontal(classes="form-row"):
            yield Label("Diagnose", classes="form-label")
            yield Select(self.options, value=self.initial, allow_blank=False, id="doctor-target")
            yield Button("Run doctor (ctrl+d)", id="doctor-run", variant="primary")
        with VerticalScroll(id="doctor-scroll"):
            yield Static(id="doctor-findings")
        with Horizontal(classes="form-row"):
            yield Label("Explain error", classes="form-label")
            # select_on_focus off: a character typed elsewhere on the screen moves focus here and must stay
            yield Input(id="doctor-error", select_on_focus=False,
                        placeholder="paste what a client printed, e.g. tlsv1 alert unknown ca")
        yield Static(id="doctor-explanation")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = "doctor"
        self.action_diagnose()

    def action_back(self) -> None:
        self.dismiss(None)

    def on_key(self, event: events.Key) -> None:
        """Typing on this screen goes into Explain error, wherever the focus was (t is not time travel here).

        An operator pastes or types a client's error message without clicking the field
        first; the characters must not reach the app's one-letter keys (t, o, q).
        """
        if not event.is_printable or self.app.typing_into_field() or event.character == "?":
            return
        field = self.query_one("#doctor-error", Input)
        field.focus()
        field.insert_text_at_cursor(event.character or "")
        event.stop()
        event.prevent_default()

    @on(Select.Changed, "#doctor-target")
    @on(Button.Pressed, "#doctor-run")
    def action_diagnose(self) -> None:
        self.diagnose(str(self.query_one("#doctor-target", Select).value))

    @on(Input.Submitted, "#doctor-error")
    def explain_error(self) -> None:
        from core.diagnose.doctor import UNKNOWN, explain

        pasted = self.query_one("#doctor-error", Input).value.strip()
        if not pasted:
            return
        explanation = explain(pasted)
        text = Text()
        if explanation is UNKNOWN:
            text.append("Not a TLS error certrotate recognises. ", style="bold yellow")
        text.append("Cause: ", style="bold")
        text.append(f"{explanation.cause}\n")
        text.append("Fix:   ", style="bold")
        text.append(explanation.fix)
        self.query_one("#doctor-explanation", Static).update(text)

    @work(exclusive=True, group="doctor", exit_on_error=False)
    async def diagnose(self, target: str) -> None:
        shown = self.query_one("#doctor-findings", Static)
        shown.update(Text(f"Running doctor on {target.replace(':', ' ')}…", style="italic"))
        try:
            heading, findings = await asyncio.to_thread(run_doctor, self.state, target, self.app.now())
        except CertRotateError as error:
            self.findings = []
            shown.update(Text(str(error), style="bold red"))
        else:
            self.findings = findings
            shown.update(findings_text(heading, findings))
        self.diagnosed += 1
