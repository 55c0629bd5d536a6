"""Every host of the cluster in one table: what the state file records and what the hosts show now.

The table is a column header over an OptionList of one line per host, laid out here. A
DataTable renders each cell on its own and was the costliest widget of the home screen's
first frame (its import included); a list of hosts needs one line per host, one of them
highlighted, and columns that fit the terminal rather than scroll out of it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.cells import cell_len, set_cell_size
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

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
GAP = 2  # spaces between columns
# When the rows are wider than the screen, the widest of these gives way, a cell at a time, down to SHRINK_TO
# cells (cut with "…"), so that every column stays in sight; the host name only once the others are cut that far.
# The host detail under the table says the highlighted host in full.
SHRINKABLE = ("last", "where", "steps", "serving", "bundle")
SHRINK_TO = 8


def column_widths(keys: list[str], labels: dict[str, str], rows: list[dict[str, str]], room: int | None) -> dict[str, int]:
    """Each column as wide as its widest cell or label; narrowed (the widest SHRINKABLE first) to fit `room` cells."""
    widths = {key: max([cell_len(labels[key])] + [cell_len(row.get(key, "")) for row in rows]) for key in keys}
    excess = sum(widths.values()) + GAP * (len(keys) - 1) - room if room else 0
    for group in ([key for key in SHRINKABLE if key in widths], ["host"] if "host" in widths else []):
        while excess > 0:
            widest = max(group, key=lambda key: widths[key], default=None)
            if widest is None or widths[widest] <= SHRINK_TO:
                break
            widths[widest] -= 1
            excess -= 1
    return widths


def line(keys: list[str], widths: dict[str, int], cells: dict[str, str]) -> str:
    """One row (or the header) at the given widths: each cell padded, or cut with "…" to fit."""
    parts = []
    for key in keys:
        value, width = cells.get(key, ""), widths[key]
        if cell_len(value) > width:
            value = set_cell_size(value, width - 1) + "…"
        parts.append(set_cell_size(value, width))
    return (" " * GAP).join(parts).rstrip()


class HostTable(Vertical):
    """Rows keyed by host (node name or client key), columns by the keys in COLUMNS."""

    DEFAULT_CSS = """
    HostTable { height: 1fr; }
    HostTable > #host-columns { height: 1; text-style: bold; color: $foreground; background: $panel; }
    HostTable > OptionList { height: 1fr; max-height: 100%; }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.observed: dict[str, HostView] = {}
        self._keys = [key for _, key in COLUMNS]
        self._labels = {key: label for label, key in (*COLUMNS, REGION_COLUMN)}
        self._rows: dict[str, dict[str, str]] = {}  # host -> column -> text, in the table's order
        self._widths: dict[str, int] = {}

    def compose(self) -> ComposeResult:
        yield Static(id="host-columns", markup=False)
        yield OptionList(id="host-rows", compact=True)

    def on_resize(self) -> None:
        self._lay_out()

    # -- what the rows say ---------------------------------------------------------------------

    def show_recorded(self, hosts: list[RecordedHost]) -> None:
        """Add or update the rows from the state file; rows of hosts no longer listed go away."""
        keys = [key for _, key in COLUMNS]
        if any(host.region for host in hosts):
            keys.insert(1, REGION_COLUMN[1])
        self._keys = keys
        rows = {}
        for host in hosts:
            where = f"{host.role} {host.address}"
            last = host.last_action if len(host.last_action) <= LAST_ACTION_WIDTH else \
                host.last_action[:LAST_ACTION_WIDTH - 1] + "…"
            row = self._rows.get(host.key) or {"reachable": "…", "serving": "", "expires": "", "bundle": ""}
            row.update(host=host.key, region=host.region, where=where, steps=host.steps, last=last)
            if host.delivery is not None:
                row["bundle"] = host.delivery
            rows[host.key] = row
        self._rows = rows
        self.observed = {key: view for key, view in self.observed.items() if key in rows}
        self._lay_out()

    def show_observed(self, view: HostView) -> None:
        row = self._rows.get(view.key)
        if row is None:
            return
        self.observed[view.key] = view
        reachable = {"yes": "yes", "manual": "manual", "no": "NO", "kubernetes": "via Secret"}[view.reachable]
        if view.unknown_key is not None:
            reachable = "unknown key"
        serving = view.served_fingerprint[:12] + "…" if view.served_fingerprint else ""
        if not serving and view.problem and view.reachable == "yes":
            serving = "not served"
        row.update(reachable=reachable, serving=serving,
                   expires=day(view.served_not_after) if view.served_not_after is not None else "")
        if view.reachable not in ("manual", "kubernetes"):
            row["bundle"] = view.bundle
        self._lay_out(changed=view.key)

    def value(self, host: str, column: str) -> str:
        return self._rows[host].get(column, "")

    @property
    def labels(self) -> list[str]:
        """The column headings, in order."""
        return [self._labels[key] for key in self._keys]

    # -- the highlighted row -------------------------------------------------------------------

    @property
    def selected_host(self) -> str | None:
        rows = self.query_one(OptionList)
        if rows.highlighted is None:
            return next(iter(self._rows), None)
        return rows.get_option_at_index(rows.highlighted).id

    def highlight(self, index: int) -> None:
        self.query_one(OptionList).highlighted = index

    # -- laying the rows out -------------------------------------------------------------------

    def _lay_out(self, changed: str | None = None) -> None:
        """Draw the header and rows at widths that fit; only `changed`'s row when no column width moved."""
        if not self.is_mounted:
            return
        rows = self.query_one(OptionList)
        room = self.size.width or None  # None before the first layout: every column at its natural width
        widths = column_widths(self._keys, self._labels, list(self._rows.values()), room)
        if changed is not None and widths == self._widths:
            index = rows.get_option_index(changed)
            rows.replace_option_prompt_at_index(index, self._line(self._rows[changed]))
            return
        self._widths = widths
        self.query_one("#host-columns", Static).update(self._line(self._labels))
        highlighted = rows.highlighted
        selected = self.selected_host if highlighted is not None else None
        same_hosts = [option.id for option in rows.options] == list(self._rows)
        if same_hosts:
            for index, row in enumerate(self._rows.values()):
                prompt = self._line(row)
                if str(rows.get_option_at_index(index).prompt) != prompt.plain:
                    rows.replace_option_prompt_at_index(index, prompt)
            return
        rows.set_options(Option(self._line(row), id=host) for host, row in self._rows.items())
        if self._rows:
            hosts = list(self._rows)
            rows.highlighted = hosts.index(selected) if selected in hosts else min(highlighted or 0, len(hosts) - 1)

    def _line(self, cells: dict[str, str]) -> Text:
        """A row (or the header, given the labels) at the current widths."""
        return Text(line(self._keys, self._widths, cells), end="")
