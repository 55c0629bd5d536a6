"""The certificate inspector shows what an operator checks on a certificate, never a private key."""

from __future__ import annotations

import pytest

from core.diagnose.cert_info import read_certificate_file
from tests.tui_helpers import SIZE, home_ready, screen_shown, wait_for
from tui.app import CertRotateApp
from tui.screens.cert_inspector import CertInspectorScreen
from tui.widgets.cert_view import CertView
from tui.widgets.host_table import HostTable

pytestmark = pytest.mark.lab


async def test_the_served_certificate_of_the_selected_node_is_shown(lab):
    app = CertRotateApp(lab.state_path)
    async with app.run_test(size=SIZE) as pilot:
        await home_ready(pilot)
        await pilot.press("down")                      # n2
        await pilot.press("i")
        inspector = await screen_shown(pilot, CertInspectorScreen, "the inspector")
        view = inspector.query_one(CertView)
        await wait_for(pilot, lambda: bool(view.certificates), "the served chain")
        shown = "\n".join(str(cell) for part in view.render().renderables if hasattr(part, "columns")
                          for cell in part.columns[1].cells)
        assert "served by n2" in view.source
        assert lab.nodes[1].address in shown and "Cockroach CA" in shown
        assert view.certificates[0].fingerprint in shown


async def test_a_local_bundle_file_is_shown_entry_by_entry(lab):
    app = CertRotateApp(lab.state_path)
    async with app.run_test(size=SIZE) as pilot:
        home = await home_ready(pilot)
        home.query_one(HostTable).highlight(3)   # root: a client, so the inspector opens ca.crt
        await pilot.press("i")
        inspector = await screen_shown(pilot, CertInspectorScreen, "the inspector")
        view = inspector.query_one(CertView)
        await wait_for(pilot, lambda: bool(view.certificates), "the local ca.crt")
        assert view.certificates == tuple(read_certificate_file(lab.local_certs_dir / "ca.crt"))


async def test_a_key_file_is_refused_and_no_key_is_shown(lab):
    app = CertRotateApp(lab.state_path)
    async with app.run_test(size=SIZE) as pilot:
        home = await home_ready(pilot)
        home.query_one(HostTable).highlight(3)
        await pilot.press("i")
        inspector = await screen_shown(pilot, CertInspectorScreen, "the inspector")
        view = inspector.query_one(CertView)
        await wait_for(pilot, lambda: bool(view.certificates), "the local ca.crt")
        path_input = inspector.query_one("#cert-path")
        path_input.value = str(lab.local_certs_dir / "client.root.key")
        await pilot.press("ctrl+o")
        await wait_for(pilot, lambda: not view.certificates, "the refusal")
        sentence = str(inspector.query_one("#cert-error").render())
        assert "client.root.key entry 1 is a RSA PRIVATE KEY, not a certificate" in sentence
        assert "MII" not in app.export_screenshot()
