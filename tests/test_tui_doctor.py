"""The wizard's doctor screen (d on home): each finding of `certrotate doctor`, with its cause and fix."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from core import findings, pki
from core.diagnose import doctor
from core.diagnose.advice import ADVICE, advice
from tests.tui_helpers import SIZE, home_ready, screen_shown, wait_for
from tui.app import CertRotateApp
from tui.screens.doctor import DoctorScreen


def test_every_check_that_can_warn_or_fail_has_a_cause_and_a_fix():
    source = Path(doctor.__file__).read_text() + Path(findings.__file__).read_text()
    checks = set(re.findall(r'Finding\(\s*(?:WARN|FAIL|OK if [^,]+),\s*"([a-z-]+)"', source))
    assert {"chain", "hostname", "on-disk", "client-ca", "permissions"} <= checks
    assert checks - {"served"} <= ADVICE.keys() and "served" in ADVICE
    assert advice(doctor.Finding(doctor.OK, "chain", "fine")) is None


async def diagnosis(pilot, screen: DoctorScreen, before: int) -> str:
    await wait_for(pilot, lambda: screen.diagnosed > before and not any(
        w.group == "doctor" and w.is_running for w in screen.workers), "the doctor's findings")
    await pilot.pause()
    return str(screen.query_one("#doctor-findings").render())


@pytest.mark.lab
async def test_a_node_that_did_not_reload_its_new_certificate_is_diagnosed_with_cause_and_fix(lab_factory):
    lab = lab_factory(2, clients=("root",))
    lab.nodes[1].install_node_cert(pki.issue_node(lab.ca, lab.nodes[1].addresses))  # written, never reloaded
    app = CertRotateApp(lab.state_path)
    async with app.run_test(size=SIZE) as pilot:
        await home_ready(pilot)
        await pilot.press("d")
        screen = await screen_shown(pilot, DoctorScreen)
        shown = await diagnosis(pilot, screen, 0)
        assert shown.startswith("node n1") and "All checks passed." in shown

        before = screen.diagnosed
        screen.query_one("#doctor-target").value = "node:n2"
        shown = await diagnosis(pilot, screen, before)
        assert "WARN on-disk: served ≠ on disk: reload pending" in shown
        assert "Cause: The certificate the node serves is not its file on disk (node.crt" in shown
        assert "Fix:   Run the node's reload command" in shown
        assert "0 failures, 1 warning." in shown
        assert [f.check for f in screen.findings if f.level == "WARN"] == ["on-disk"]

        before = screen.diagnosed
        screen.query_one("#doctor-target").value = "client:root"
        shown = await diagnosis(pilot, screen, before)
        assert "OK   client-accepted:" in shown and "client.root.crt in the TLS handshake" in shown

        await pilot.press("escape")
        await home_ready(pilot)


async def test_a_pasted_client_error_is_explained(tmp_path):
    path = tmp_path / "certrotate.toml"
    path.write_text('[cluster]\nname = "prod"\n\n[[nodes]]\nname = "n1"\nssh_host = "127.0.0.2"\nssh_port = 1\n'
                    'certs_dir = "/var/lib/cockroach/certs"\nsql_addr = "127.0.0.2:1"\n')
    app = CertRotateApp(path)
    async with app.run_test(size=SIZE) as pilot:
        await home_ready(pilot)
        app.screen.action_doctor()
        screen = await screen_shown(pilot, DoctorScreen)
        shown = await diagnosis(pilot, screen, 0)
        assert "FAIL served: cannot read the certificate served on 127.0.0.2:1" in shown
        assert "Cause: The node's SQL address did not complete a TLS handshake" in shown
        field = screen.query_one("#doctor-error")
        field.value = "SSL error: tlsv1 alert unknown ca"
        field.focus()
        await pilot.press("enter")
        explained = str(screen.query_one("#doctor-explanation").render())
        assert "does not trust the CA that signed your client certificate" in explained
        assert explained.startswith("Cause:") and "Fix:" in explained
