"""Run the next step (engine.advance) or a rollback, with live per-host progress and a log.

The work runs in an async worker that awaits the engine in a thread under the app's
core gate; the engine's report callback, called from its threads, only posts messages.
Before anything runs, every host's SSH key must be known (the operator is asked).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Header, ProgressBar, RichLog, Static

from core.config.record import RotationRecord
from core.config.state import State
from core.errors import CertRotateError, SecretNeeded
from core.rotation import kinds
from core.rotation.contract import PLAN_LINE
from core.rotation.discard import MANUAL
from tui import operations
from tui.screens.host_key import settle_host_keys
from tui.screens.secret_prompt import MAX_TRIES, ask_secret
from tui.view import when
from tui.widgets.host_progress import FINAL, HostProgress

if TYPE_CHECKING:
    from core.rotation.model import Progress

STATUS_STYLES = {"ok": "green", "failed": "bold red", "skipped": "dim", "running": "", "waiting": "yellow",
                 MANUAL: "bold yellow"}


def _host_count(state: State, step: str) -> int:
    nodes, clients = state.inventory.nodes, state.inventory.clients
    if step == "rollback":
        return len(nodes) + sum(1 for c in clients if c.delivered_over_ssh)
    if step == "leaf":
        kind = kinds.get(RotationRecord(state.rotation).kind)
        with_nodes, with_clients = kind.leaf_hosts(state.inventory.cluster)
        return (len(nodes) if with_nodes else 0) + (len(clients) if with_clients else 0)
    return len(nodes) + len(clients)


class RunStepScreen(Screen[tuple[str, str]]):
    """`operation` is "advance" or "rollback"; dismissed with (error, summary); error is "" on success."""

    CSS_PATH = "steps.tcss"

    BINDINGS = [
        Binding("escape", "back", "Back to overview"),
    ]

    class Progressed(Message):
        """One engine progress line, posted from the engine's threads."""

        def __init__(self, event: Progress) -> None:
            super().__init__()
            self.event = event

    def __init__(self, operation: str = "advance") -> None:
        super().__init__()
        self.operation = operation
        self.finished = False
        self.outcome = None
        self.error = ""
        self.summary = ""
        self._state: State | None = None
        self._counted: set[str] = set()
        self._done: set[tuple[str, str]] = set()
        self.by_hand: list[str] = []  # what only the operator can do (a rollback's clients delivered by hand)

    def compose(self) -> ComposeResult:
        yield Header(icon="◆")
        title = "Rolling back" if self.operation == "rollback" else "Running the next step"
        yield Static(title, id="run-title")
        yield ProgressBar(total=None, show_eta=False, id="run-progress")
        yield HostProgress(id="run-hosts")
        yield RichLog(id="run-log", wrap=True, markup=False)
        yield Static(id="run-outcome")
        yield Footer()

    def on_mount(self) -> None:
        self.run_operation()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "back":
            return True if self.finished else None
        return True

    def action_back(self) -> None:
        self.dismiss((self.error, self.summary))

    # -- the work -----------------------------------------------------------------------

    def report(self, event: Progress) -> None:
        """Called by the engine from its threads: hand the line to the UI, touch nothing."""
        self.post_message(self.Progressed(event))

    @work(exclusive=True, group="run", exit_on_error=False)
    async def run_operation(self) -> None:
        app = self.app
        log = self.query_one(RichLog)
        error = ""
        async with app.core_gate:
            state = self._state = await asyncio.to_thread(operations.load, app.state_path)
            title = f"{'Rolling back' if self.operation == 'rollback' else 'Running'} rotation {state.rotation.get('id')}"
            self.query_one("#run-title", Static).update(Text(f"{title} — from phase {state.phase}", style="bold"))
            pool = await asyncio.to_thread(operations.new_pool)
            try:
                log.write("Checking the SSH host key of every host…")
                if not await settle_host_keys(app, state, pool, app.declined_keys):
                    error = ("An SSH host key was not trusted, so nothing was changed; "
                             "press r on the overview to be asked again.")
                elif self.operation == "rollback":
                    self.outcome = await asyncio.to_thread(operations.rollback, state, pool, report=self.report)
                else:
                    for attempt in range(MAX_TRIES):
                        try:
                            self.outcome = await asyncio.to_thread(operations.advance, state, pool, now=app.clock,
                                                                   report=self.report)
                            break
                        except SecretNeeded as needed:  # an encrypted CA key or a token: ask, then run again
                            if attempt == MAX_TRIES - 1 or not await ask_secret(app, needed):
                                raise
                            state = self._state = await asyncio.to_thread(operations.load, app.state_path)
            except CertRotateError as failure:
                error = str(failure)
            finally:
                await asyncio.to_thread(pool.close)
                # The engine saved the file after every host: it, not our copy, is what happened.
                try:
                    app.state = await asyncio.to_thread(operations.load, app.state_path)
                except CertRotateError as failure:
                    error = error or str(failure)
        self.finish(error=error)

    def on_worker_state_changed(self, event) -> None:
        from textual.worker import WorkerState

        if event.state == WorkerState.ERROR and not self.finished:
            # A bug, not an expected failure: say so rather than leave the screen spinning.
            self.finish(error=f"certrotate hit an internal error ({event.worker.error!r}); please report it.")

    def finish(self, *, error: str = "") -> None:
        if self.finished:
            return
        self.finished = True
        self.error = error
        bar = self.query_one(ProgressBar)
        outcome = self.query_one("#run-outcome", Static)
        if error:
            self.summary = error
            outcome.update(Text(error, style="bold red").append("  Press escape for the overview.", style="dim"))
            outcome.add_class("-error")
            if bar.total is None:
                bar.update(total=1, progress=0)
        else:
            self.summary = self._describe_outcome()
            outcome.update(Text(self.summary, style="bold green").append("  Press escape for the overview.", style="dim"))
            bar.update(total=bar.total or 1, progress=bar.total or 1)
        self.query_one(RichLog).write(Text(self.summary, style="bold red" if error else "bold"))
        self.refresh_bindings()

    def _describe_outcome(self) -> str:
        outcome = self.outcome
        if self.operation == "rollback" and not (outcome and outcome.gate):
            done = "Rolled back: every host certrotate reaches has its files from before the rotation. Phase idle."
            if self.by_hand:
                done += " Still to do by hand — " + " ".join(self.by_hand)
            return done
        if outcome is None:
            return "Done."
        if outcome.finished:
            state = self.app.state
            retired = state.history[-1].get("retired_ca_key") if state is not None and state.history else None
            return "Rotation finished; phase idle." + (f" The old CA key was moved to {retired}." if retired else "")
        gate = outcome.gate
        if gate is None:
            return f"Phase {outcome.phase}."
        if gate.kind == "schedule":
            return f"Phase {outcome.phase}: waiting until {when(gate.until)} UTC — {gate.reason}."
        if gate.kind == "certificates":
            return (f"Phase {outcome.phase}: waiting for signed certificates — {gate.reason}. Still missing: "
                    f"{', '.join(gate.items)}; press n on the overview once they are there.")
        return (f"Phase {outcome.phase}: waiting for your confirmation — {gate.reason} ({', '.join(gate.items)}); "
                "press c on the overview.")

    # -- progress ------------------------------------------------------------------------

    @on(Progressed)
    def show_progress(self, message: Progressed) -> None:
        event = message.event
        if event.status == MANUAL:
            self.by_hand.append(f"{event.host}: {event.detail}")
        if not (event.heading and event.host == PLAN_LINE):  # the executed plan's digest: a log line, not a host
            self.query_one(HostProgress).show(event)
        line = Text(f"{event.host:<20} {event.step:<8} ")
        line.append(f"{event.status:<8}", style=STATUS_STYLES.get(event.status, ""))
        line.append(f" {event.detail}")
        self.query_one(RichLog).write(line)
        if event.step == "observe" or self._state is None or event.heading:
            return  # the bar counts hosts; a region's line is a heading, not one more host
        bar = self.query_one(ProgressBar)
        if event.step not in self._counted:
            self._counted.add(event.step)
            bar.update(total=(bar.total or 0) + _host_count(self._state, event.step))
        if event.status in FINAL and (event.host, event.step) not in self._done:
            self._done.add((event.host, event.step))
            bar.advance(1)
