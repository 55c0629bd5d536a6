"""The wizard installs a UI certificate: the operator sees every check, confirms, and watches each node."""

from __future__ import annotations

import pytest
from textual.widgets import Button, DataTable, Input

from tests.rotation_support import edit_inventory, node_files
from tests.tui_helpers import SIZE, home_ready, screen_shown, wait_for
from tests.ui_support import OrgCA, browse_console, write_ui_files
from tui.app import CertRotateApp
from tui.screens.run_step import RunStepScreen
from tui.screens.ui_cert import UiCertScreen
from tui.widgets.host_progress import HostProgress

pytestmark = pytest.mark.lab


@pytest.fixture
def console_lab(lab_factory):
    lab = lab_factory(3, console=True)
    edit_inventory(lab, lambda data: data["cluster"].update(verify_timeout_seconds=5))
    return lab


def column(screen, name: str) -> list[str]:
    table = screen.query_one("#ui-checks", DataTable)
    return [str(table.get_cell(row, name)) for row in table.rows]


async def open_ui_screen(pilot):
    await pilot.press("s")
    await pilot.click("#start-ui")
    return await screen_shown(pilot, UiCertScreen, "the UI certificate screen")


async def test_installing_a_ui_certificate_shows_the_checks_then_every_node_serves_it(console_lab):
    lab, org = console_lab, OrgCA()
    leaf = org.issue_ui([n.address for n in lab.nodes])
    write_ui_files(lab, org.chain_pem(leaf), leaf.key_pem())         # named in the inventory
    app = CertRotateApp(lab.state_path)
    async with app.run_test(size=SIZE) as pilot:
        await home_ready(pilot)
        screen = await open_ui_screen(pilot)
        await wait_for(pilot, lambda: screen.ready, "the checks to pass")
        assert screen.query_one("#ui-cert-path", Input).value == "ui/ui.crt"
        results = column(screen, "result")
        assert [r for r in results if "is covered" in r] == [f"{n.name}: {n.address} is covered." for n in lab.nodes]
        assert "ui/ui.key is the key of ui/ui.crt." in results
        assert "ui/ui.key is readable by its owner only (0600)." in results
        assert not screen.query_one("#ui-install", Button).disabled

        await pilot.press("ctrl+s")
        run = await screen_shown(pilot, RunStepScreen, "the run screen")
        await wait_for(pilot, lambda: run.finished, "the rollout to finish", timeout=180)
        assert not run.error, run.error
        assert run.query_one(HostProgress).status == {"n1": "ok", "n2": "ok", "n3": "ok"}
        assert "finished" in run.summary
    for node in lab.nodes:
        assert browse_console(node, org.root)[0] == leaf.certificate


async def test_a_world_readable_key_typed_in_is_shown_and_cannot_be_installed(console_lab):
    lab, org = console_lab, OrgCA()
    leaf = org.issue_ui([n.address for n in lab.nodes])
    write_ui_files(lab, org.chain_pem(leaf), leaf.key_pem(), key_mode=0o644, in_inventory=False)
    before = node_files(lab)
    app = CertRotateApp(lab.state_path)
    async with app.run_test(size=SIZE) as pilot:
        await home_ready(pilot)
        screen = await open_ui_screen(pilot)
        await pilot.click("#ui-cert-path")
        await pilot.press(*"ui/ui.crt")
        await pilot.click("#ui-key-path")
        await pilot.press(*"ui/ui.key", "enter")
        await wait_for(pilot, lambda: screen.checks_done >= 1, "the checks")
        assert screen.checked_for == ("ui/ui.crt", "ui/ui.key")
        verdict = str(screen.query_one("#ui-verdict").render())
        assert "ui/ui.key is readable by group and others (mode 0644)" in verdict and "chmod 600 ui/ui.key" in verdict
        assert screen.query_one("#ui-install", Button).disabled
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert app.screen is screen and not app.state.rotation

        (lab.operator_dir / "ui" / "ui.key").chmod(0o600)               # the operator fixes it and checks again
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: screen.checks_done >= 2, "the second check")
        assert screen.ready and not screen.query_one("#ui-install", Button).disabled
        await pilot.press("escape")
        await pilot.pause()
    assert node_files(lab) == before


async def test_the_pair_can_be_picked_in_the_file_tree(console_lab):
    lab, org = console_lab, OrgCA()
    leaf = org.issue_ui([n.address for n in lab.nodes])
    write_ui_files(lab, org.chain_pem(leaf), leaf.key_pem(), in_inventory=False)
    app = CertRotateApp(lab.state_path)
    async with app.run_test(size=SIZE) as pilot:
        await home_ready(pilot)
        screen = await open_ui_screen(pilot)
        tree = screen.query_one("#ui-browse")
        await wait_for(pilot, lambda: tree.last_line >= 3, "the tree to list the operator's directory")
        shown = [str(tree.get_node_at_line(line).label) for line in range(tree.last_line + 1)]
        assert shown[1:] == ["certs", "safe", "ui"]                       # no state file, lock or SSH key
        tree.focus()
        await pilot.press("down", "down", "down", "enter")               # open ui/
        await wait_for(pilot, lambda: tree.last_line >= 5, "ui/ to open")
        await pilot.press("down", "enter", "down", "enter")              # ui.crt, then ui.key
        await wait_for(pilot, lambda: screen.ready, "the checks to pass")
        assert screen.checked_for == ("ui/ui.crt", "ui/ui.key")


async def test_a_node_that_keeps_its_old_console_certificate_is_shown_restored_and_the_run_stops(console_lab):
    from tests.rotation_support import set_node_reload

    lab, org = console_lab, OrgCA()
    leaf = org.issue_ui([n.address for n in lab.nodes])
    write_ui_files(lab, org.chain_pem(leaf), leaf.key_pem())
    set_node_reload(lab, "n2", lab.nodes[1].postgres.reload_command)   # the console is never signalled
    app = CertRotateApp(lab.state_path)
    async with app.run_test(size=SIZE) as pilot:
        await home_ready(pilot)
        screen = await open_ui_screen(pilot)
        await wait_for(pilot, lambda: screen.ready, "the checks to pass")
        await pilot.press("ctrl+s")
        run = await screen_shown(pilot, RunStepScreen, "the run screen")
        await wait_for(pilot, lambda: run.finished, "the rollout to stop", timeout=180)
        assert run.error.startswith("n2 ") and "previous UI certificate was restored" in run.error
        assert run.query_one(HostProgress).status == {"n1": "ok", "n2": "failed"}
    assert browse_console(lab.nodes[0], org.root)[0] == leaf.certificate
    assert not (lab.nodes[1].certs_dir / "ui.crt").exists() and not (lab.nodes[2].certs_dir / "ui.crt").exists()
