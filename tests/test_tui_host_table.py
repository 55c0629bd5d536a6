"""The overview's host table: one line per host under a header, columns that fit the terminal."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import OptionList

from tests.tui_helpers import home_ready, wait_for
from tui.app import CertRotateApp
from tui.widgets.host_table import SHRINK_TO, HostTable, column_widths, line

# Four hosts nobody answers for (closed loopback ports), with long names and addresses.
STATE = '[cluster]\nname = "prod"\n' + "".join(
    f'\n[[nodes]]\nname = "db-{i}.eu-west.example"\nssh_host = "127.0.0.2"\nssh_port = 1\n'
    f'sql_addr = "127.0.0.2:1"\ncerts_dir = "/var/lib/cockroach/certs"\n' for i in (1, 2, 3)
) + '\n[[clients]]\nuser = "root"\n'

KEYS = ["host", "where", "reachable", "last"]
LABELS = {"host": "Host", "where": "Where", "reachable": "Reachable", "last": "Last action"}
ROWS = [{"host": "n1", "where": "node 10.0.0.1.example.internal", "reachable": "yes",
         "last": "trust: verify n1 trusts CA 1234"}]


def test_columns_are_as_wide_as_their_widest_cell_when_there_is_room():
    widths = column_widths(KEYS, LABELS, ROWS, room=200)
    assert widths == {"host": 4, "where": 30, "reachable": 9, "last": 31}
    assert line(KEYS, widths, ROWS[0]) == "n1    node 10.0.0.1.example.internal  yes        trust: verify n1 trusts CA 1234"


def test_too_wide_rows_give_way_in_their_widest_columns_never_below_the_minimum():
    natural = column_widths(KEYS, LABELS, ROWS, room=None)
    tight = column_widths(KEYS, LABELS, ROWS, room=50)
    assert tight["host"] == natural["host"] and tight["reachable"] == natural["reachable"]
    assert sum(tight.values()) + 2 * (len(KEYS) - 1) == 50
    assert SHRINK_TO < tight["where"] < natural["where"] and SHRINK_TO < tight["last"] < natural["last"]
    assert abs(tight["where"] - tight["last"]) <= 1  # the two long ones cut alike, not one to nothing
    row = line(KEYS, tight, ROWS[0])
    assert len(row) <= 50 and "trust: verify …" in row and "node 10.0.0.1.e…" in row
    narrowest = column_widths(KEYS, LABELS, ROWS, room=20)
    assert narrowest["last"] == narrowest["where"] == SHRINK_TO  # cut with "…", never to nothing


async def test_at_80_columns_every_heading_and_host_is_on_screen_and_the_arrows_pick_the_host(tmp_path: Path):
    state = tmp_path / "certrotate.toml"
    state.write_text(STATE)
    app = CertRotateApp(state)
    async with app.run_test(size=(80, 30)) as pilot:
        home = await home_ready(pilot)
        table = home.query_one(HostTable)
        await wait_for(pilot, lambda: table.value("db-3.eu-west.example", "reachable") == "NO", "db-3 seen down")
        await pilot.pause()
        lines = [strip.text.rstrip() for strip in app.screen._compositor.render_strips()]
        header = next(text for text in lines if text.lstrip().startswith("Host "))
        for heading in table.labels:  # each column in sight, its heading cut with "…" if need be
            assert heading[:SHRINK_TO - 1] in header, (heading, header)
        for host in ("db-1.eu-we", "db-3.eu-we", "root"):  # long names cut with "…" rather than columns lost
            assert any(text.lstrip().startswith(host) for text in lines), (host, lines)
        assert all(len(text) <= 80 for text in lines)

        table.query_one(OptionList).focus()
        await pilot.press("down", "down")
        assert table.selected_host == "db-3.eu-west.example"
        detail = str(home.query_one("#host-detail").render())
        assert detail.startswith("db-3.eu-west.example: ") and "refused" in detail
