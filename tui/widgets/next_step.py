"""What the operator does next, and why: the run, the date, the confirmation, or the last error."""

from __future__ import annotations

import datetime as dt

from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from tui.view import NextStep, when

KEYS = {
    "start": "Press s to start one.",
    "run": "Press n to see every file and command it will change, then Enter to run it.",
    "schedule": "Come back then (n then Enter runs the leaf step); p previews it now.",
    "confirm": "Press c to open the checklist.",
}


class NextStepPanel(Widget):
    """Renders `step` (tui.view.next_step) and the wizard's clock when it is not the real one."""

    DEFAULT_CSS = """
    NextStepPanel { width: 1fr; height: auto; padding: 0 1; border: round $primary; }
    NextStepPanel.-error { border: round $error; }
    """

    step: reactive[NextStep | None] = reactive(None, layout=True)
    clock: reactive[dt.datetime | None] = reactive(None)
    demo: reactive[bool] = reactive(False)

    def watch_step(self, step: NextStep | None) -> None:
        self.set_class(bool(step and step.last_error), "-error")

    def render(self) -> Text:
        step = self.step
        if step is None:
            return Text("Reading the state file…")
        text = Text()
        text.append("Next: ", style="bold")
        text.append(step.title + "\n", style="bold")
        text.append(step.reason + "\n")
        if step.items and step.kind == "schedule":
            text.append("Also still to confirm: " + ", ".join(step.items) + " (c opens the checklist once they have "
                        "the new bundle)\n", style="italic")
        elif step.items:
            text.append("Waiting for: " + ", ".join(step.items) + "\n", style="italic")
        if step.last_error:
            text.append("Last error: ", style="bold red")
            text.append(step.last_error + "\n", style="red")
        hint = step.hint or KEYS.get(step.kind, "")
        if step.kind == "schedule" and self.demo:
            hint = "Demo: press t to time travel past this date."
        text.append(hint, style="dim")
        if self.clock is not None:
            text.append(f"\nWizard clock: {when(self.clock)} UTC (time travel)", style="bold cyan")
        return text
