"""The wizard's "Cloud client CA" screen, opened from the command palette like an operator would."""

from __future__ import annotations

import pytest
from textual.widgets import DataTable, Input

from core.tools import cloud
from tests.tui_helpers import SIZE, home_ready, screen_shown, wait_for
from tui.app import CertRotateApp
from tui.cli import main
from tui.screens.cloud_client_ca import DEFAULT_DIR, CloudClientCaScreen

pytestmark = pytest.mark.lab


def keys(text: str) -> list[str]:
    return ["space" if c == " " else c for c in text]


async def replace_input(pilot, screen, selector: str, value: str) -> None:
    field = screen.query_one(selector, Input)
    field.value = value
    field.focus()
    await pilot.press("enter")


async def test_palette_opens_the_client_cas_with_expiry_and_the_upload_command(lab, tmp_path, capsys):
    ca_dir = lab.state_path.parent / DEFAULT_DIR
    for _ in range(2):  # a transition: new CA first, the old one kept
        assert main(["cloud", "client-ca", "--dir", str(ca_dir), "--key-type", "ecdsa-p256"]) == 0
    capsys.readouterr()
    newest, older = cloud.read_client_ca_dir(ca_dir).cas

    app = CertRotateApp(lab.state_path)
    async with app.run_test(size=SIZE) as pilot:
        await home_ready(pilot)
        await pilot.press("ctrl+p")
        await pilot.press(*keys("Cloud client CA"))
        await pilot.pause(0.3)
        await pilot.press("enter")
        screen = await screen_shown(pilot, CloudClientCaScreen, "the Cloud client CA screen")
        table = screen.query_one(DataTable)
        await wait_for(pilot, lambda: table.row_count == 2, "both client CAs listed")
        assert [str(table.get_row_at(i)[0]) for i in range(2)] == [newest.short, older.short]
        assert str(table.get_cell(newest.fingerprint, "role")).startswith("newest")
        assert str(table.get_cell(older.fingerprint, "role")) == "kept for the transition"
        assert str(table.get_cell(newest.fingerprint, "expires")) == f"{newest.not_after:%Y-%m-%d}"
        upload = str(screen.query_one("#client-ca-upload").render())
        assert "--request PATCH" in upload and "/clusters/{cluster_id}/client-ca-cert" in upload
        assert "$COCKROACH_API_KEY" in upload and f"--retire {older.short}" in upload

        await replace_input(pilot, screen, "#client-ca-cluster", "abc-123")
        await wait_for(pilot, lambda: "/clusters/abc-123/client-ca-cert" in str(screen.query_one("#client-ca-upload").render()),
                       "the cluster ID in the command")

        not_a_dir = tmp_path / "a-file"
        not_a_dir.write_text("x")
        await replace_input(pilot, screen, "#client-ca-dir", str(not_a_dir))
        await wait_for(pilot, lambda: "is a file, not a directory" in str(screen.query_one("#client-ca-error").render()),
                       "the error sentence")
        assert table.row_count == 0
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, CloudClientCaScreen)
