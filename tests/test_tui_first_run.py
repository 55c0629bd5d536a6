"""Without a state file the wizard asks for the cluster, its nodes and clients, and writes the file."""

from __future__ import annotations

import stat

import pytest
from textual.widgets import Button, DataTable, Input

from core.config import state as state_mod
from tests.tui_helpers import SIZE, home_ready, screen_shown
from tui.app import CertRotateApp
from tui.screens.first_run import FirstRunScreen
from tui.widgets.host_table import HostTable


async def fill(pilot, values: dict[str, str]) -> None:
    screen = pilot.app.screen
    for field_id, value in values.items():
        field = screen.query_one(f"#{field_id}", Input)
        field.value = ""
        field.focus()
        if len(value) < 40:
            await pilot.press(*value)  # typed, like an operator
        else:
            field.value = value  # long paths: pasted
    await pilot.pause()


async def test_a_bad_ssh_port_is_refused_with_a_sentence_naming_the_field(tmp_path):
    app = CertRotateApp(tmp_path / "certrotate.toml")
    async with app.run_test(size=SIZE) as pilot:
        screen = await screen_shown(pilot, FirstRunScreen)
        await fill(pilot, {"cluster-name": "prod", "node-name": "n1", "node-ssh-host": "10.0.0.1",
                           "node-ssh-port": "70000", "node-certs-dir": "/var/lib/cockroach/certs"})
        await pilot.press("ctrl+n")
        sentence = str(screen.query_one("#first-run-error").render())
        assert "nodes[0].ssh_port must be between 1 and 65535" in sentence
        assert screen.nodes == []
    assert not (tmp_path / "certrotate.toml").exists()


@pytest.mark.lab
async def test_describing_a_lab_node_writes_a_private_state_file_and_the_node_is_reached(lab, tmp_path):
    node = lab.nodes[0]
    path = tmp_path / "new" / "certrotate.toml"
    path.parent.mkdir()
    app = CertRotateApp(path)
    async with app.run_test(size=SIZE) as pilot:
        await screen_shown(pilot, FirstRunScreen)
        await fill(pilot, {
            "cluster-name": "prod", "node-name": "n1", "node-ssh-host": node.address,
            "node-ssh-port": str(node.ssh_port), "node-ssh-key": str(lab.operator_key),
            "node-known-hosts": str(lab.known_hosts), "node-certs-dir": str(node.certs_dir),
            "node-sql-addr": node.sql_addr,
        })
        await pilot.press("ctrl+n")
        await fill(pilot, {"client-user": "root"})
        await pilot.press("ctrl+l")
        await pilot.press("ctrl+s")
        home = await home_ready(pilot)
        assert home.query_one(HostTable).value("n1", "reachable") == "yes"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    state = state_mod.load(path)
    assert state.inventory.cluster.name == "prod"
    assert [n.name for n in state.inventory.nodes] == ["n1"] and state.inventory.clients[0].user == "root"


async def test_an_added_node_and_client_can_be_edited_in_place_before_the_file_is_written(tmp_path):
    path = tmp_path / "certrotate.toml"
    app = CertRotateApp(path)
    async with app.run_test(size=SIZE) as pilot:
        screen = await screen_shown(pilot, FirstRunScreen)
        await fill(pilot, {"cluster-name": "prod"})
        for name, host in (("n1", "10.0.0.1"), ("n2", "10.0.0.2")):
            await fill(pilot, {"node-name": name, "node-ssh-host": host, "node-certs-dir": "/var/lib/cockroach/certs",
                               "node-addresses": f"{name}.example.com, {host}"})
            await pilot.press("ctrl+n")
        await fill(pilot, {"client-user": "root"})
        await pilot.press("ctrl+l")
        nodes = screen.query_one("#node-list", DataTable)

        # n1 goes back into the form, with everything it was added with
        nodes.focus()
        nodes.move_cursor(row=0)
        await pilot.press("enter")
        await pilot.pause()
        assert screen.query_one("#node-ssh-host", Input).value == "10.0.0.1"
        assert screen.query_one("#node-addresses", Input).value == "n1.example.com, 10.0.0.1"
        assert "Save node n1" in str(screen.query_one("#add-node", Button).label)

        # a rename onto n2 is refused with core's sentence, and nothing changes
        await fill(pilot, {"node-name": "n2"})
        await pilot.press("ctrl+n")
        assert "'n2' is used by another node" in str(screen.query_one("#first-run-error").render())
        assert [n["name"] for n in screen.nodes] == ["n1", "n2"]

        await fill(pilot, {"node-name": "n1", "node-ssh-host": "10.0.0.11"})
        await pilot.press("ctrl+n")
        assert [(n["name"], n["ssh_host"]) for n in screen.nodes] == [("n1", "10.0.0.11"), ("n2", "10.0.0.2")]
        assert nodes.get_row("n1")[1] == "10.0.0.11" and nodes.row_count == 2
        assert "Add node" in str(screen.query_one("#add-node", Button).label)
        assert screen.query_one("#node-name", Input).value == ""

        # the client: from exported files to delivery over SSH
        clients = screen.query_one("#client-list", DataTable)
        clients.focus()
        await pilot.press("ctrl+e")
        assert screen.query_one("#client-user", Input).value == "root"
        await fill(pilot, {"client-ssh-host": "10.0.0.9", "client-certs-dir": "/etc/app/certs"})
        await pilot.press("ctrl+l")
        assert screen.clients == [{"user": "root", "ssh_host": "10.0.0.9", "certs_dir": "/etc/app/certs"}]
        assert clients.row_count == 1 and "over SSH to 10.0.0.9" in clients.get_row("root@10.0.0.9")[1]

        await pilot.press("ctrl+s")
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
    state = state_mod.load(path)
    assert [(n.name, n.ssh_host) for n in state.inventory.nodes] == [("n1", "10.0.0.11"), ("n2", "10.0.0.2")]
    assert state.inventory.clients[0].ssh_host == "10.0.0.9"
