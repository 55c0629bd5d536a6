"""The wizard asks for an encrypted CA key's passphrase in a password field, and writes it nowhere."""

from __future__ import annotations

import pytest
from textual.widgets import Input

from core.signers import credentials
from tests.rotation_support import served
from tests.signer_support import encrypt_ca_key, files_containing, verify_full_everywhere
from tests.tui_helpers import SIZE, home_ready, run_next_step, screen_shown, wait_for
from tui.app import CertRotateApp
from tui.screens.secret_prompt import SecretScreen

pytestmark = pytest.mark.lab

PASSPHRASE = "wizard knows best"


@pytest.fixture(autouse=True)
def no_secret_left_behind(monkeypatch):
    monkeypatch.delenv("CERTROTATE_CA_KEY_PASSPHRASE", raising=False)
    credentials.forget()
    yield
    credentials.forget()


async def _type(pilot, text: str) -> None:
    field = pilot.app.screen.query_one("#secret-input", Input)
    assert field.password  # shown as dots, never as text
    field.value = text
    await pilot.press("enter")


async def test_node_rotation_with_an_encrypted_ca_key_asks_for_the_passphrase(lab):
    encrypt_ca_key(lab, PASSPHRASE.encode())
    before = {node.name: served(lab, node) for node in lab.nodes}
    app = CertRotateApp(lab.state_path)
    async with app.run_test(size=SIZE) as pilot:
        await home_ready(pilot)
        await pilot.press("s")
        await pilot.click("#start-nodes")
        await screen_shown(pilot, SecretScreen, "the passphrase prompt")
        await _type(pilot, "not the passphrase")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, SecretScreen) and pilot.app.screen.needed.wrong
                       and bool(pilot.app.screen.query("#secret-wrong")), "the prompt again, saying it was wrong")
        await _type(pilot, PASSPHRASE)
        await wait_for(pilot, lambda: pilot.app.state.phase == "leaf", "the rotation to start")
        run = await run_next_step(pilot)  # the passphrase is still in memory: no second prompt
        assert not run.error, run.error
        assert "finished" in run.summary
        assert PASSPHRASE not in app.export_screenshot()
    for node in lab.nodes:
        assert served(lab, node) != before[node.name]
    verify_full_everywhere(lab)
    assert files_containing(lab.workdir, PASSPHRASE.encode()) == []
