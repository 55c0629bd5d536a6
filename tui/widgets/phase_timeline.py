"""The rotation's phases as a row of boxes: trust → wait → leaf → retire, with dates done and due."""

from __future__ import annotations

from typing import Iterable

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.reactive import reactive
from textual.widgets import Static

from tui.view import STAGE_TITLES, STAGES, Stage

MARKS = {"done": "✓", "current": "▶", "pending": "·", "skipped": "–", "idle": "·"}


class PhaseTimeline(Horizontal):
    """Shows `stages` (from tui.view.timeline); `current` is the phase in progress, or "idle"."""

    DEFAULT_CSS = """
    PhaseTimeline { height: 6; }
    PhaseTimeline .stage {
        width: 1fr; height: 6; padding: 0 1;
        border: round $panel-lighten-2; color: $text-muted;
    }
    PhaseTimeline .stage.-done { border: round $success; color: $text; }
    PhaseTimeline .stage.-current { border: heavy $accent; color: $text; text-style: bold; }
    PhaseTimeline .stage.-skipped { color: $text-disabled; }
    PhaseTimeline .arrow { width: 3; height: 6; content-align: center middle; color: $text-muted; }
    """

    stages: reactive[tuple[Stage, ...]] = reactive((), recompose=True)

    def __init__(self, *, stages: Iterable[Stage] = (), **kwargs) -> None:
        """The stages to compose with: set only once mounted, they would compose the row twice, and the
        first frame would show every phase idle."""
        super().__init__(**kwargs)
        self.set_reactive(PhaseTimeline.stages, tuple(stages))

    @property
    def current(self) -> str:
        return next((stage.name for stage in self.stages if stage.status == "current"), "idle")

    def status_of(self, name: str) -> str:
        return next((stage.status for stage in self.stages if stage.name == name), "idle")

    def compose(self) -> ComposeResult:
        by_name = {stage.name: stage for stage in self.stages}
        for index, name in enumerate(STAGES):
            if index:
                yield Static("→", classes="arrow")
            stage = by_name.get(name, Stage(name, "idle", ""))
            text = f"{MARKS[stage.status]} {STAGE_TITLES[name]}\n{stage.status}\n{stage.note}"
            yield Static(text, id=f"stage-{name}", classes=f"stage -{stage.status}", markup=False)
