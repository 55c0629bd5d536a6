"""A dry run's plan: per host, every file it would write and every command it would run.

Lines wrap (a reload command or a path is shown whole, continued on the next line under
itself), because a preview an operator quotes in a change ticket must not cut anything off.
"""

from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static


class PlanView(VerticalScroll):
    DEFAULT_CSS = """
    PlanView { height: 1fr; padding: 0 1; }
    PlanView > #plan-text { width: 1fr; height: auto; }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.plan: dict[str, list[str]] = {}

    def compose(self) -> ComposeResult:
        yield Static(id="plan-text")

    def show(self, plan: dict[str, list[str]]) -> None:
        self.plan = plan
        parts = []
        for host, lines in plan.items():
            parts.append(Text(f"{host}  ({len(lines)} action{'s' * (len(lines) != 1)})", style="bold"))
            grid = Table.grid(padding=(0, 1))
            grid.add_column(width=2, no_wrap=True)
            grid.add_column(ratio=1, overflow="fold")
            for line in lines or ["nothing to do"]:
                grid.add_row("•", Text(line))
            parts.append(grid)
        if not plan:
            parts.append(Text("Nothing to do in this phase."))
        self.query_one("#plan-text", Static).update(Group(*parts))

    def lines(self) -> list[str]:
        return [line for lines in self.plan.values() for line in lines]
