"""The wizard offers the client CA rotation when the cluster has a client CA, and runs its trust step."""

from __future__ import annotations

import pytest
from textual.widgets import Button, Static

from tests.rotation_support import certs_in, edit_inventory
from tests.tui_helpers import SIZE, back_home, home_ready, run_next_step, screen_shown, wait_for
from tui.app import CertRotateApp
from tui.screens.start import StartScreen
from tui.widgets.phase_timeline import PhaseTimeline


@pytest.mark.lab
async def test_rotate_the_client_ca_from_the_start_screen(lab_factory):
    lab = lab_factory(2, node_cert_layout="split", client_ca=True)
    edit_inventory(lab, lambda data: data["cluster"].update(verify_timeout_seconds=5))
    old_client_ca = certs_in(lab.local_certs_dir / "ca-client.crt")[0]
    app = CertRotateApp(lab.state_path)
    async with app.run_test(size=SIZE) as pilot:
        home = await home_ready(pilot)
        title = str(home.query_one("#cluster-title", Static).render())
        assert "split node certs" in title and "client CA in ca-client.crt" in title

        await pilot.press("s")
        start = await screen_shown(pilot, StartScreen)
        assert "Rotate the client CA" in str(start.query_one("#start-client-ca", Button).label)
        await pilot.click("#start-client-ca")
        await wait_for(pilot, lambda: app.state.phase == "trust", "the client CA rotation to start")
        assert app.state.rotation["kind"] == "client-ca"

        run = await run_next_step(pilot)                         # trust: ca-client.crt on every node
        assert not run.error, run.error
        home = await back_home(pilot)
        assert home.query_one(PhaseTimeline).current == "wait"
    for node in lab.nodes:
        bundle = certs_in(node.certs_dir / "ca-client.crt")
        assert len(bundle) == 2 and bundle[1] == old_client_ca


async def test_without_a_client_ca_the_start_screen_offers_the_four_kinds(tmp_path):
    path = tmp_path / "certrotate.toml"
    path.write_text('[cluster]\nname = "prod"\n\n[[nodes]]\nname = "n1"\nssh_host = "127.0.0.2"\nssh_port = 1\n'
                    'certs_dir = "/var/lib/cockroach/certs"\n')
    app = CertRotateApp(path)
    async with app.run_test(size=SIZE) as pilot:
        await home_ready(pilot)
        await pilot.press("s")
        start = await screen_shown(pilot, StartScreen)
        assert not start.query("#start-client-ca")
        await pilot.press("6")                                   # not offered: the key does nothing
        await pilot.pause()
        assert isinstance(app.screen, StartScreen)
        await pilot.press("escape")
