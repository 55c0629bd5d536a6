"""Live per-host progress of a running step: one row per host, its step, status and latest detail."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.widgets import DataTable

if TYPE_CHECKING:
    from core.rotation.model import Progress

FINAL = ("ok", "skipped", "failed")
STATUS_LABELS = {"running": "running…", "ok": "ok ✓", "skipped": "skipped", "failed": "FAILED ×", "waiting": "waiting"}


class HostProgress(DataTable):
    DEFAULT_CSS = """
    HostProgress { height: auto; max-height: 16; }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(cursor_type="none", **kwargs)
        self.status: dict[str, str] = {}

    def on_mount(self) -> None:
        self.add_column("Host", key="host")
        self.add_column("Step", key="step")
        self.add_column("Status", key="status")
        self.add_column("Detail", key="detail")

    def show(self, event: Progress) -> None:
        label = STATUS_LABELS.get(event.status, event.status)
        detail = event.detail if len(event.detail) <= 110 else event.detail[:109] + "…"
        self.status[event.host] = event.status
        if event.host in self.rows:
            for column, value in (("step", event.step), ("status", label), ("detail", detail)):
                self.update_cell(event.host, column, value, update_width=True)
        else:
            self.add_row(event.host, event.step, label, detail, key=event.host)

    def all_final(self) -> bool:
        return bool(self.status) and all(status in FINAL for status in self.status.values())
