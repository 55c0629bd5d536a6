"""An SSH host key certrotate has never seen is shown to the operator, who decides."""

from __future__ import annotations

import pytest

from tests.tui_helpers import SIZE, home_ready, screen_shown
from tui.app import CertRotateApp
from tui.screens.host_key import HostKeyScreen
from tui.widgets.host_table import HostTable

pytestmark = pytest.mark.lab


def forget_host(lab, node) -> bytes:
    """Remove the node's line from the lab's known_hosts; returns the removed line."""
    lines = lab.known_hosts.read_bytes().splitlines(keepends=True)
    name = f"[{node.address}]:{node.ssh_port}".encode()
    kept = [line for line in lines if not line.startswith(name)]
    lab.known_hosts.write_bytes(b"".join(kept))
    [removed] = [line for line in lines if line.startswith(name)]
    return removed


async def test_an_unknown_host_key_is_shown_with_type_and_fingerprint(lab):
    forget_host(lab, lab.nodes[1])
    app = CertRotateApp(lab.state_path)
    async with app.run_test(size=SIZE) as pilot:
        await screen_shown(pilot, HostKeyScreen, "the host-key question")
        facts = str(app.screen.query_one("#host-key-facts").render())
        error = app.screen.error
        assert lab.nodes[1].address in facts and "ssh-ed25519" in facts
        assert error.fingerprint.startswith("SHA256:") and error.fingerprint in facts


async def test_a_trusted_host_key_is_recorded_and_the_node_is_reached(lab):
    removed = forget_host(lab, lab.nodes[1])
    app = CertRotateApp(lab.state_path)
    async with app.run_test(size=SIZE) as pilot:
        await screen_shown(pilot, HostKeyScreen, "the host-key question")
        await pilot.click("#trust-key")
        home = await home_ready(pilot)
        assert home.query_one(HostTable).value("n2", "reachable") == "yes"
    key = removed.split()[2]
    assert key in lab.known_hosts.read_bytes()


async def test_a_declined_host_key_leaves_known_hosts_alone_and_says_so(lab):
    forget_host(lab, lab.nodes[1])
    before = lab.known_hosts.read_bytes()
    app = CertRotateApp(lab.state_path)
    async with app.run_test(size=SIZE) as pilot:
        await screen_shown(pilot, HostKeyScreen, "the host-key question")
        await pilot.press("n")
        home = await home_ready(pilot)
        assert home.query_one(HostTable).value("n2", "reachable") == "unknown key"
    assert lab.known_hosts.read_bytes() == before
