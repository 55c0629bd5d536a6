"""Preview: the exact files and commands per host of the next step (engine.advance dry_run), nothing changed."""

from __future__ import annotations

import asyncio

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer, Header, LoadingIndicator, Static

from core.errors import CertRotateError
from tui import operations
from tui.screens.host_key import settle_host_keys
from tui.view import when
from tui.widgets.plan_view import PlanView


class DryRunScreen(Screen[str | None]):
    """Dismissed with "run" when the operator goes on to run the step, else None."""

    BINDINGS = [
        Binding("enter", "run", "Run these steps", priority=True),
        Binding("escape", "back", "Back"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.plan: dict[str, list[str]] | None = None
        self.error = ""

    def compose(self) -> ComposeResult:
        yield Header(icon="◆")
        yield Static("Preview of the next step — nothing is changed on any host or on disk", id="dry-run-title")
        yield LoadingIndicator(id="dry-run-loading")
        yield PlanView(id="plan")
        yield Static(id="dry-run-gate")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(PlanView).display = False
        self.make_plan()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "run":
            return True if self.plan is not None and not self.error else None
        return True

    def action_run(self) -> None:
        self.dismiss("run")

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
                    raise CertRotateError("An SSH host key was not trusted; there is no plan without logging in.")
                outcome = await asyncio.to_thread(operations.advance, state, pool, now=app.clock, dry_run=True)
            except CertRotateError as error:
                self.error = str(error)
                gate_text.update(Text(self.error, style="bold red"))
                return
            finally:
                self.query_one(LoadingIndicator).display = False
                await asyncio.to_thread(pool.close)
        self.plan = outcome.plan
        plan_view = self.query_one(PlanView)
        plan_view.show(outcome.plan)
        plan_view.display = True
        text = Text(f"Phase {outcome.phase}. ", style="bold")
        if outcome.gate is not None:
            gate = outcome.gate
            until = f" until {when(gate.until)} UTC" if gate.until else ""
            text.append(f"The run would then stop at a {gate.kind} gate{until}: {gate.reason}.")
        text.append("  Press enter to run these steps, escape to go back.", style="dim")
        gate_text.update(text)
        self.refresh_bindings()
