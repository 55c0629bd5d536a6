"""The rotation's phases as a row of boxes: trust → wait → leaf → retire, with dates done and due.

One widget draws the whole row (Rich panels in a grid), styled from the component classes
below: a box per phase as a widget of its own made the home screen's first frame wait for
eight widgets' styles and layouts.
"""

from __future__ import annotations

from typing import Iterable

from rich import box
from rich.panel import Panel
from rich.table import Table
from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from tui.view import STAGE_TITLES, STAGES, Stage

MARKS = {"done": "✓", "current": "▶", "pending": "·", "skipped": "–", "idle": "·"}
STATUSES = tuple(MARKS)


class PhaseTimeline(Widget):
    """Shows `stages` (from tui.view.timeline); `current` is the phase in progress, or "idle"."""

    COMPONENT_CLASSES = {f"phase-timeline--{status}" for status in STATUSES} | {
        f"phase-timeline--{status}-border" for status in STATUSES} | {"phase-timeline--arrow"}

    DEFAULT_CSS = """
    PhaseTimeline { height: 6; }
    PhaseTimeline > .phase-timeline--pending, PhaseTimeline > .phase-timeline--idle { color: $text-muted; }
    PhaseTimeline > .phase-timeline--pending-border, PhaseTimeline > .phase-timeline--idle-border,
    PhaseTimeline > .phase-timeline--skipped-border { color: $panel-lighten-2; }
    PhaseTimeline > .phase-timeline--done { color: $text; }
    PhaseTimeline > .phase-timeline--done-border { color: $success; }
    PhaseTimeline > .phase-timeline--current { color: $text; text-style: bold; }
    PhaseTimeline > .phase-timeline--current-border { color: $accent; }
    PhaseTimeline > .phase-timeline--skipped { color: $text-disabled; }
    PhaseTimeline > .phase-timeline--arrow { color: $text-muted; }
    """

    stages: reactive[tuple[Stage, ...]] = reactive(())

    def __init__(self, *, stages: Iterable[Stage] = (), **kwargs) -> None:
        """The stages of the first frame: set only once mounted, that frame would show every phase idle."""
        super().__init__(**kwargs)
        self.set_reactive(PhaseTimeline.stages, tuple(stages))

    @property
    def current(self) -> str:
        return next((stage.name for stage in self.stages if stage.status == "current"), "idle")

    def status_of(self, name: str) -> str:
        return self.stage(name).status

    def stage(self, name: str) -> Stage:
        return next((stage for stage in self.stages if stage.name == name), Stage(name, "idle", ""))

    def stage_text(self, name: str) -> str:
        """What the box of phase `name` says: mark and title, status, note."""
        stage = self.stage(name)
        return f"{MARKS[stage.status]} {STAGE_TITLES[name]}\n{stage.status}\n{stage.note}"

    def render(self) -> Table:
        grid = Table.grid(expand=True)
        arrow = self.get_component_rich_style("phase-timeline--arrow")
        for index, name in enumerate(STAGES):
            if index:
                grid.add_column(width=3, justify="center", vertical="middle")
            grid.add_column(ratio=1)
        cells: list[Text | Panel] = []
        for index, name in enumerate(STAGES):
            if index:
                cells.append(Text("→", style=arrow))
            status = self.stage(name).status
            text = Text(self.stage_text(name), style=self.get_component_rich_style(f"phase-timeline--{status}"))
            border = self.get_component_rich_style(f"phase-timeline--{status}-border")
            cells.append(Panel(text, box=box.HEAVY if status == "current" else box.ROUNDED, border_style=border,
                               height=6, padding=(0, 1)))
        grid.add_row(*cells)
        return grid
