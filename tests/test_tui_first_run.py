"""Without a state file the wizard asks for the cluster, its nodes and clients, and writes the file."""

from __future__ import annotations

import stat

import pytest
from textual.widgets import Input

from core import state as state_mod
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
