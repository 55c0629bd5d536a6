"""Preview: the exact files and commands per host of the next step (engine.advance dry_run), nothing changed.

It is also the confirmation in front of every run: `n` on the overview opens it, and only
Enter here (or the Run button) starts the step, so no single key changes a node.
"""

from __future__ import annotations

import asyncio

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import Button, Footer, Header, LoadingIndicator, Static

from core.errors import CertRotateError
from tui import operations
from tui.screens.host_key import settle_host_keys
from tui.view import when
from tui.widgets.plan_view import PlanView


class DryRunScreen(Screen[str | None]):
    """Dismissed with "run" when the operator goes on to run the step, else None."""

    CSS_PATH = ["steps.tcss", "dialogs.tcss"]

    BINDINGS = [
        # Not a priority binding: Enter on the focused Back button must go back, not run.
        Binding("enter", "run", "Run these steps"),
        Binding("escape", "back", "Back"),
    ]

    def __init__(self, confirming: bool = False) -> None:
        super().__init__()
        self.confirming = confirming  # opened by `n`: the operator means to run what this shows
        self.plan: dict[str, list[str]] | None = None
        self.error = ""
        self.ready = False  # the plan (or why there is none) is shown
        self.untrusted_key = False
        self.held = False  # the plan shown is held by a gate still closed (the leaf step, from the wait gate)
        self.digest = ""  # the plan's digest, which the run journals when it executes the same plan

    def compose(self) -> ComposeResult:
        yield Header(icon="◆")
        title = ("Run the next step? This is what it will do — nothing has changed yet" if self.confirming
                 else "Preview of the next step — nothing is changed on any host or on disk")
        yield Static(title, id="dry-run-title")
        yield LoadingIndicator(id="dry-run-loading")
        yield PlanView(id="plan")
        yield Static(id="dry-run-gate")
        with Horizontal(classes="dialog-buttons", id="dry-run-buttons"):
            yield Button("Run these steps (enter)", id="dry-run-run", variant="warning", disabled=True)
            yield Button("Back (esc)", id="dry-run-back", variant="primary")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(PlanView).display = False
        self.make_plan()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "run":
            return True if self.runnable else None
        return True

    @property
    def runnable(self) -> bool:
        """A plan to run. One a closed gate still holds may be run too: the run does what is ready and stops there.

        A preview that failed on a host (unreachable, say) still lets the operator run: the run
        changes the hosts it can reach and stops with the failure, which it records as the
        last error. Only a host key the operator did not trust leaves nothing to run.
        """
        if self.error:
            return not self.untrusted_key
        return self.plan is not None

    @on(Button.Pressed, "#dry-run-run")
    def action_run(self) -> None:
        if self.runnable:
            self.dismiss("run")

    @on(Button.Pressed, "#dry-run-back")
    def action_back(self) -> None:
        self.dismiss(None)

    @work(exclusive=True, group="core", exit_on_error=False)
    async def make_plan(self) -> None:
        app = self.app
        gate_text = self.query_one("#dry-run-gate", Static)
        async with app.core_gate:
            pool = await asyncio.to_thread(operations.new_pool)
            try:
                state = await asyncio.to_thread(operations.load, app.state_path)
                if not await settle_host_keys(app, state, pool, app.declined_keys):
                    self.untrusted_key = True
                    raise CertRotateError("An SSH host key was not trusted; there is no plan without logging in.")
                outcome = await asyncio.to_thread(operations.advance, state, pool, now=app.clock, dry_run=True)
            except CertRotateError as error:
                self.error = str(error)
                hint = ("  Press escape to go back." if self.untrusted_key else
                        "  The preview is incomplete; enter runs the step anyway (it stops at this failure), "
                        "escape goes back.")
                gate_text.update(Text(self.error, style="bold red").append(hint, style="dim"))
                self.query_one("#dry-run-run", Button).disabled = not self.runnable
                self.ready = True
                self.refresh_bindings()
                return
            finally:
                self.query_one(LoadingIndicator).display = False
                await asyncio.to_thread(pool.close)
        self.plan = outcome.plan
        plan_view = self.query_one(PlanView)
        plan_view.show(outcome.plan)
        plan_view.display = True
        self.digest = outcome.digest
        text = Text(f"Phase {outcome.phase} · plan {outcome.digest}. ", style="bold")
        held = outcome.held_by
        self.held = held is not None
        if held is not None:
            until = f" until {when(held.until)} UTC" if held.until else ""
            missing = f" ({', '.join(held.items)})" if held.items else ""
            text.append(f"This is the leaf step as it will run once the {held.kind} gate opens; it still holds it"
                        f"{until}: {held.reason}{missing}. ", style="yellow")
        if outcome.gate is not None:
            gate = outcome.gate
            until = f" until {when(gate.until)} UTC" if gate.until else ""
            text.append(f"The run would then stop at a {gate.kind} gate{until}: {gate.reason}.")
        text.append("  Enter runs what is ready now and stops at that gate; escape goes back." if self.held
                    else "  Press enter to run these steps, escape to go back.", style="dim")
        gate_text.update(text)
        self.query_one("#dry-run-run", Button).disabled = not self.runnable
        self.ready = True
        self.refresh_bindings()
