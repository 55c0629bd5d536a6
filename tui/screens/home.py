"""The home screen of a cluster: phase timeline, what is next and why, and every host.

The screen reads `app.state` (reactive) for everything recorded and refreshes the host
table from the hosts themselves in a worker. Every action opens its own screen; the
screen decides, widgets only show.

Whether an idle cluster is down by expiry needs the local CA read with cryptography, which
the first frame must not wait for: the refresh worker judges it (first from the operator's
files, then with what the nodes serve), and until then the next step says it is checking.
"""

from __future__ import annotations

import asyncio

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer, Header, Label, OptionList, Static

from core.config.inventory import NodeConfig
from core.config.record import RotationRecord
from core.config.state import State
from core.errors import CertRotateError, SecretNeeded
from core.rotation import kinds
from core.rotation.kinds.ca import WaitTooLong
from core.rotation.kinds.recover import Recovery
from tui import operations, view
from tui.view import kind_title
from tui.widgets.host_table import HostTable
from tui.widgets.next_step import NextStepPanel
from tui.widgets.phase_timeline import PhaseTimeline


class HomeScreen(Screen):
    BINDINGS = [
        Binding("s", "start", "Start", tooltip="Start a CA rotation, first-time setup, or a leaf-only rotation"),
        Binding("n", "run_next", "Run next…", tooltip="Show what the next step will do; Enter there runs it"),
        Binding("p", "preview", "Preview", tooltip="Dry run: every file and command per host, nothing changed"),
        Binding("c", "confirm", "Confirm", tooltip="Tick the manually delivered clients that have their files"),
        Binding("b", "rollback", "Roll back", tooltip="Return every host to its files from before the rotation"),
        Binding("r", "refresh_now", "Refresh", tooltip="Log in to every host and probe what it serves"),
        Binding("i", "inspect", "Inspect", tooltip="Subject, SANs, issuer, validity of a file or a served cert"),
        Binding("d", "doctor", "Doctor", tooltip="Diagnose a node or client: every check, with its cause and fix"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.refreshes = 0  # finished host refreshes, for anyone waiting on one
        self._refresh_again = False
        self._announce_refresh = False  # `r` was pressed: say when the refresh is done
        # The last expiry judgement of an idle cluster, and the state it was made for (view.expiry_outage).
        self._expiry: tuple[State | None, Recovery | None | view.Unjudged] = (None, view.UNJUDGED)

    def compose(self) -> ComposeResult:
        yield Header(icon="◆")
        yield Static(id="cluster-title")
        state = self.app.state
        yield PhaseTimeline(stages=view.timeline(state, self.app.now()) if state else (), id="timeline")
        yield NextStepPanel(id="next-step")
        yield Static(id="autopilot")
        yield Static(id="message")
        yield Label("Hosts", classes="section-title")
        yield HostTable(id="hosts")
        yield Static(id="host-detail")
        yield Footer()

    def on_mount(self) -> None:
        self.watch(self.app, "state", self.show_state)
        self.watch(self.app, "clock", lambda _: self.show_state(self.app.state))
        self.query_one(NextStepPanel).demo = self.app.demo
        # Once this screen is painted: the refresh's threads import cryptography and paramiko, and would
        # hold the GIL while the first frame is being made.
        self.call_after_refresh(self.action_refresh)

    def on_screen_resume(self) -> None:
        self.show_state(self.app.state)

    # -- showing the state ------------------------------------------------------------------

    def show_state(self, state: State | None) -> None:
        if state is None:
            return
        cluster = state.inventory.cluster
        title = Text()
        title.append(f"Cluster {cluster.name}", style="bold")
        title.append(f"   profile {cluster.profile} · {len(state.inventory.nodes)} nodes · "
                     f"{len(state.inventory.clients)} clients · state {state.path}", style="dim")
        for fact in view.trust_layout(cluster):
            title.append(f" · {fact}", style="dim")
        if state.rotation:
            title.append(f"\nRotation {state.rotation.get('id')} — {kind_title(state.rotation.get('kind'))}, "
                         f"phase {state.phase}")
        elif isinstance(self._outage(state), Recovery):
            title.append("\nPhase idle — the cluster is down: its certificates have expired", style="bold red")
        else:
            title.append("\nPhase idle")
        if self.app.demo and self.app.demo_note:
            title.append(f"\n{self.app.demo_note}", style="italic cyan")
        self.query_one("#cluster-title", Static).update(title)
        self.query_one(PhaseTimeline).stages = tuple(view.timeline(state, self.app.now()))
        panel = self.query_one(NextStepPanel)
        panel.clock = self.app.clock
        panel.step = view.next_step(state, self.app.now(), self._outage(state))
        self.query_one(HostTable).show_recorded(view.recorded_hosts(state))
        self.show_autopilot(state)
        self.sub_title = f"{cluster.name} — phase {state.phase}"
        self.refresh_bindings()

    def _outage(self, state: State) -> Recovery | None | view.Unjudged:
        """The expiry judgement of this very state; a state read since (another step's) is not judged yet."""
        judged_for, outage = self._expiry
        return outage if judged_for is state else view.UNJUDGED

    async def _judge_expiry(self, state: State) -> None:
        """Whether the idle cluster is down by expiry, from the local CA and what the nodes served (in a thread)."""
        if state.rotation:
            return
        outage = await asyncio.to_thread(view.expiry_outage, state, self.app.now(), self._served())
        self._expiry = (state, outage)

    def _served(self) -> dict:
        """When the certificate each node served at the last host refresh ends."""
        return {key: host.served_not_after for key, host in self.query_one(HostTable).observed.items()}

    def show_autopilot(self, state: State) -> None:
        """The autopilot line (policy, window, next, last run), only for a state file with [autopilot]."""
        widget = self.query_one("#autopilot", Static)
        widget.display = state.policy is not None
        if state.policy is None:
            return
        from tui.autopilot_line import autopilot_line

        table = self.query_one(HostTable)
        served = {key: (seen.served_not_after, seen.served_fingerprint or "")
                  for key, seen in table.observed.items() if seen.served_not_after is not None}
        widget.update(Text(autopilot_line(state, self.app.now(), served).text()))

    @on(OptionList.OptionHighlighted, "#host-rows")
    def show_host_detail(self) -> None:
        """Under the table, the full facts of the highlighted host, or why it could not be reached."""
        table = self.query_one(HostTable)
        key = table.selected_host
        observed = table.observed.get(key) if key else None
        detail = self.query_one("#host-detail", Static)
        if observed is None:
            detail.update("")
            return
        text = Text(f"{key}: ", style="bold")
        if observed.problem:
            text.append(observed.problem, style="red")
        elif observed.served_fingerprint:
            text.append(f"serves {observed.served_fingerprint}, valid until {view.when(observed.served_not_after)} UTC")
        elif observed.reachable == "kubernetes":
            text.append("gets its files through the Kubernetes Secret; certrotate only probes its sql_addr, if set")
        elif observed.reachable == "manual":
            text.append("delivered by hand: certrotate exports its files and you confirm the delivery")
        else:
            text.append("reachable over SSH")
        detail.update(text)

    def say(self, sentence: str, *, error: bool = False) -> None:
        """One sentence about the last operation, under the next-step panel (errors in red)."""
        message = self.query_one("#message", Static)
        message.update(Text(sentence, style="bold red" if error else "green"))
        message.set_class(error, "-error")

    # -- which actions are possible now ---------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """A key that would do nothing in this phase is not in the footer (False hides it; None would only dim it)."""
        state = self.app.state
        if state is None:
            return None
        in_flight = bool(state.rotation)
        if action == "start":
            return not in_flight
        if action in ("run_next", "preview", "rollback"):
            return in_flight
        if action == "confirm":
            return in_flight and bool(self._to_confirm(view.next_step(state, self.app.now())))
        return True

    @staticmethod
    def _to_confirm(step: view.NextStep) -> tuple[str, ...]:
        """What the checklist would offer: a confirmation gate's items, or the ones the wait still needs."""
        return step.items if step.kind in ("confirm", "schedule") else ()

    # -- actions ----------------------------------------------------------------------------

    def action_start(self) -> None:
        from tui.screens.ocsp import OcspScreen, statement
        from tui.screens.start import StartScreen

        def chosen(kind: str | None) -> None:
            if kind and kinds.get(kind).asks_for_files:  # the kind starts from the operator's own files
                self.action_install_ui_certificate()
            elif kind:
                self.start_rotation(kind)

        cluster = self.app.state.inventory.cluster
        ocsp_url = cluster.ocsp_url
        if not ocsp_url:
            self.app.push_screen(StartScreen(cluster), chosen)
            return

        def mode_chosen(mode: str | None) -> None:
            # the leaves this rotation issues name the responder: the operator reads what each mode does first
            if mode:
                self.say(f"New certificates will name the OCSP responder {ocsp_url}; for {mode} mode run "
                         f"{statement(mode)}")
                self.app.push_screen(StartScreen(cluster), chosen)

        self.app.push_screen(OcspScreen(ocsp_url, before_rotation=True), mode_chosen)

    def action_install_ui_certificate(self) -> None:
        """The UI certificate screen checks the pair; installing starts the `ui` rotation and runs it."""
        from tui.screens.ui_cert import UiCertScreen

        def chosen(paths: tuple[str, str] | None) -> None:
            if paths:
                self.start_rotation("ui", run_now=True, cert_path=paths[0], key_path=paths[1])

        self.app.push_screen(UiCertScreen(self.app.state), chosen)

    def action_run_next(self) -> None:
        """Two deliberate actions change a node: `n` shows the plan, Enter on it runs.

        Before the wait's date nothing would run, so `n` says so (and what p and c do) instead."""
        step = view.next_step(self.app.state, self.app.now())
        if step.kind == "schedule":
            confirm = f" Meanwhile c confirms {', '.join(step.items)}." if step.items else ""
            self.notify(f"Nothing runs before {view.when(step.until)} UTC (the wait); p previews the leaf step now."
                        + confirm, title="Not yet", timeout=6)
            return
        self.action_preview(confirming=True)

    def run_step_now(self) -> None:
        from tui.screens.run_step import RunStepScreen

        self.app.push_screen(RunStepScreen("advance"), self._after_run)

    def action_preview(self, confirming: bool = False) -> None:
        from tui.screens.dry_run import DryRunScreen

        def chosen(answer: str | None) -> None:
            if answer == "run":
                self.run_step_now()

        self.app.push_screen(DryRunScreen(confirming=confirming), chosen)

    def action_confirm(self) -> None:
        from tui.screens.confirm_gate import ConfirmGateScreen

        state = self.app.state
        step = view.next_step(state, self.app.now())
        items = self._to_confirm(step)
        if not items:
            self.say("Nothing is waiting for a confirmation.")
            return
        reason = step.reason if step.kind == "confirm" else view.TRUST_CONFIRM_REASON

        def chosen(items: list[str] | None) -> None:
            if items:
                self.confirm_clients(items)

        exports = {item: operations.export_dir(state, item.split("@")[0]) for item in items}
        from core.rotation import (
            kubernetes_manifests as kubernetes,  # imported on use: start-up stays light for SSH clusters
        )

        instructions = kubernetes.gate_instructions(state.inventory, state.rotation, state.base_dir)
        self.app.push_screen(ConfirmGateScreen(reason, list(items), exports, instructions), chosen)

    def action_rollback(self) -> None:
        from tui.screens.rollback import RollbackScreen
        from tui.screens.run_step import RunStepScreen

        def chosen(yes: bool | None) -> None:
            if yes:
                self.app.push_screen(RunStepScreen("rollback"), self._after_run)

        self.app.push_screen(RollbackScreen(self.app.state), chosen)

    def _after_run(self, result: tuple[str, str] | None) -> None:
        if result is not None:
            error, summary = result
            state = self.app.state
            if error and state is not None and RotationRecord(state.rotation).last_error == error:
                self.say("The step stopped; the reason is under Next above.", error=True)
            else:
                self.say(summary, error=bool(error))
        self.action_refresh()

    def action_refresh_now(self) -> None:
        """`r`: the same refresh as after every step, said aloud so the operator sees it happened."""
        if self.app.state is None:
            return
        self._announce_refresh = True
        self.notify("Probing every host…", title="Refresh", timeout=2)
        self.action_refresh()

    def action_refresh(self) -> None:
        if self.app.state is None:
            return
        if any(w.group == "refresh" and w.is_running for w in self.workers):
            self._refresh_again = True
            return
        self.refresh_hosts()

    def action_inspect(self) -> None:
        from tui.screens.cert_inspector import CertInspectorScreen

        state = self.app.state
        selected = self.query_one(HostTable).selected_host
        node = next((n for n in state.inventory.nodes if n.name == selected), None)
        self.app.push_screen(CertInspectorScreen(state, node if isinstance(node, NodeConfig) else None))

    def action_doctor(self) -> None:
        from tui.screens.doctor import DoctorScreen

        state = self.app.state
        selected = self.query_one(HostTable).selected_host
        client = next((c for c in state.inventory.clients if view.client_key(c) == selected), None)
        target = f"client:{client.user}" if client is not None else f"node:{selected}"
        self.app.push_screen(DoctorScreen(state, target))

    # -- workers ----------------------------------------------------------------------------

    @work(group="core", exit_on_error=False)
    async def start_rotation(self, kind: str, run_now: bool = False, **options: str) -> None:
        from tui.screens.secret_prompt import MAX_TRIES, ask_secret

        async with self.app.core_gate:
            for attempt in range(MAX_TRIES):
                try:
                    state = await asyncio.to_thread(operations.start, self.app.state_path, kind, **options)
                    break
                except SecretNeeded as needed:  # an encrypted CA key or a token: ask, then try again
                    if attempt < MAX_TRIES - 1 and await ask_secret(self.app, needed):
                        continue
                    self.say(str(needed), error=True)
                    self.notify(str(needed), title="Not started", severity="error")
                    return
                except WaitTooLong as error:
                    self.ask_for_shorter_wait(kind, str(error), error.longest)
                    return
                except CertRotateError as error:
                    self.say(str(error), error=True)
                    self.notify(str(error), title="Not started", severity="error")
                    return
        self.app.state = state
        self.say(f"Started {kind_title(RotationRecord(state.rotation).kind)} {state.rotation['id']}; phase {state.phase}. "
                 "Press n to see what its first step will do.")
        if run_now:
            self.run_step_now()

    def ask_for_shorter_wait(self, kind: str, sentence: str, longest: int) -> None:
        """The CA ends before the usual wait would: start only with a wait the operator chose here."""
        from tui.screens.short_wait import ShortWaitScreen

        def chosen(days: int | None) -> None:
            if days is None:
                self.say("Not started: the CA rotation needs a wait that ends before the CA does.", error=True)
            else:
                self.start_rotation(kind, wait_days=days)

        self.app.push_screen(ShortWaitScreen(sentence, longest), chosen)

    @work(group="core", exit_on_error=False)
    async def confirm_clients(self, items: list[str]) -> None:
        async with self.app.core_gate:
            try:
                state = await asyncio.to_thread(operations.confirm, self.app.state_path, items)
            except CertRotateError as error:
                self.say(str(error), error=True)
                return
        self.app.state = state
        self.say(f"Confirmed {', '.join(items)}.")

    @work(group="refresh", exit_on_error=False)
    async def refresh_hosts(self) -> None:
        from tui.screens.host_key import settle_host_keys

        app = self.app
        table = self.query_one(HostTable)
        async with app.core_gate:
            state = app.state
            await self._judge_expiry(state)  # the operator's files first: the next step without waiting on hosts
            self.show_state(app.state)
            pool = await asyncio.to_thread(operations.new_pool)
            try:
                views = await asyncio.to_thread(_observe_hosts, state, pool)
                asking = [v for v in views if v.unknown_key and v.unknown_key.fingerprint not in app.declined_keys]
                if asking and await settle_host_keys(app, state, pool, app.declined_keys):
                    views = await asyncio.to_thread(_observe_hosts, state, pool)
                for host_view in views:
                    table.show_observed(host_view)
                self.show_host_detail()
                await self._judge_expiry(state)  # what the nodes serve tells whether the cluster is down by expiry
                self.show_state(app.state)
            finally:
                await asyncio.to_thread(pool.close)
        self.refreshes += 1
        if self._announce_refresh:
            self._announce_refresh = False
            self.notify(f"Every host was probed again ({len(state.inventory.nodes) + len(state.inventory.clients)} "
                        "hosts); the table shows what they serve now.", title="Refreshed", timeout=4)
        if self._refresh_again:
            self._refresh_again = False
            self.refresh_hosts()


def _observe_hosts(state: State, pool):
    from tui.hosts import observe_hosts  # in the worker thread: core.remote.probes, paramiko

    return observe_hosts(state, pool)
