"""Every host of the cluster in one table: what the state file records and what the hosts show now."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual.widgets import DataTable

if TYPE_CHECKING:
    from tui.hosts import HostView
from tui.view import RecordedHost, day

COLUMNS = (
    ("Host", "host"),
    ("Where", "where"),
    ("Reachable", "reachable"),
    ("Serving cert", "serving"),
    ("Expires", "expires"),
    ("CA bundle", "bundle"),
    ("Steps", "steps"),
    ("Last action", "last"),
)
LAST_ACTION_WIDTH = 26
REGION_COLUMN = ("Region", "region")  # shown only when some node has a region


def cell(value: str) -> Text:
    """A cell shown as it is written: DataTable parses a plain str as Rich markup (and again at every measure
    and render), which host names and addresses are not; this Text is the one a markup-free str would become."""
    return Text(value, no_wrap=True, end="")


class HostTable(DataTable):
    """Rows keyed by host (node name or client key), columns by the keys in COLUMNS."""

    DEFAULT_CSS = """
    HostTable { height: 1fr; }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
        self.observed: dict[str, HostView] = {}

    def on_mount(self) -> None:
        for label, key in COLUMNS:
            self.add_column(Text(label), key=key)

    def _use_columns(self, with_region: bool) -> bool:
        """A Region column after Host when any node has a region; True when the table was rebuilt."""
        wanted = list(COLUMNS)
        if with_region:
            wanted.insert(1, REGION_COLUMN)
        if [key.value for key in self.columns] == [key for _, key in wanted]:
            return False
        self.clear(columns=True)
        for label, key in wanted:
            self.add_column(Text(label), key=key)
        return True

    def show_recorded(self, hosts: list[RecordedHost]) -> None:
        """Add or update the rows from the state file; rows of hosts no longer listed go away."""
        rebuilt = self._use_columns(any(host.region for host in hosts))
        keys = [host.key for host in hosts]
        for row_key in list(self.rows):
            if row_key.value not in keys:
                self.remove_row(row_key)
        for host in hosts:
            where = f"{host.role} {host.address}"
            last = host.last_action if len(host.last_action) <= LAST_ACTION_WIDTH else \
                host.last_action[:LAST_ACTION_WIDTH - 1] + "…"
            values = {"host": host.key, "region": host.region, "where": where, "steps": host.steps, "last": last}
            if host.delivery is not None:
                values["bundle"] = host.delivery
            if host.key in self.rows:
                for column, value in values.items():
                    if column in self.columns:
                        self._update(host.key, column, value)
            else:
                cells = {"reachable": "…", "serving": "", "expires": "", "bundle": host.delivery or "", **values}
                self.add_row(*(cell(cells[key.value]) for key in self.columns), key=host.key)
        if rebuilt:
            for view in list(self.observed.values()):
                self.show_observed(view)

    def show_observed(self, view: HostView) -> None:
        if view.key not in self.rows:
            return
        self.observed[view.key] = view
        reachable = {"yes": "yes", "manual": "manual", "no": "NO", "kubernetes": "via Secret"}[view.reachable]
        if view.unknown_key is not None:
            reachable = "unknown key"
        serving = view.served_fingerprint[:12] + "…" if view.served_fingerprint else ""
        if not serving and view.problem and view.reachable == "yes":
            serving = "not served"
        expires = ""
        if view.served_not_after is not None:
            expires = day(view.served_not_after)
        cells = [("reachable", reachable), ("serving", serving), ("expires", expires)]
        if view.reachable not in ("manual", "kubernetes"):
            cells.append(("bundle", view.bundle))
        for column, value in cells:
            self._update(view.key, column, value)

    def _update(self, host: str, column: str, value: str) -> None:
        """Only a cell whose text changed: each update has the table measure its column and render it again."""
        if self.value(host, column) != value:
            self.update_cell(host, column, cell(value), update_width=True)

    def value(self, host: str, column: str) -> str:
        return str(self.get_cell(host, column))

    @property
    def selected_host(self) -> str | None:
        if not self.row_count:
            return None
        row_key, _ = self.coordinate_to_cell_key(self.cursor_coordinate)
        return row_key.value
