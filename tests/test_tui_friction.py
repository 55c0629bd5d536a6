"""What a careful operator notices in the wizard: the palette, the footer, the phase cards, first run, leftovers."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from textual.command import CommandList, CommandPalette
from textual.widgets import Input

from core.config import state as state_mod
from core.rotation import engine
from tests.rotation_support import FUTURE, certrotate
from tests.test_tui_first_run import fill
from tests.tui_helpers import (SIZE, back_home, cli_to_wait_phase, confirm_all, demo_like_lab, home_ready,
                               open_run_confirmation, screen_shown, wait_for)
from tui.app import CertRotateApp
from tui.screens.discard_form import DiscardFormScreen
from tui.screens.dry_run import DryRunScreen
from tui.screens.first_run import FirstRunScreen
from tui.screens.rollback import RollbackScreen
from tui.screens.run_step import RunStepScreen
from tui.widgets.next_step import NextStepPanel
from tui.widgets.phase_timeline import PhaseTimeline

OFFLINE = """[cluster]
name = "prod"

[[nodes]]
name = "n1"
ssh_host = "127.0.0.2"
ssh_port = 1
certs_dir = "/var/lib/cockroach/certs"
"""


def offline_state(tmp_path: Path) -> Path:
    path = tmp_path / "certrotate.toml"
    path.write_text(OFFLINE)
    return path


def stage_note(screen, name: str) -> str:
    return screen.query_one(PhaseTimeline).stage_text(name)


def footer_keys(app) -> set[str]:
    return set(app.screen.active_bindings)


# -- the command palette and the footer -------------------------------------------------------------


async def test_the_palette_lists_certrotates_actions_first_and_only_sensible_built_ins(tmp_path):
    app = CertRotateApp(offline_state(tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        await home_ready(pilot)
        await pilot.press("ctrl+p")
        palette = await screen_shown(pilot, CommandPalette, "the command palette")
        commands = palette.query_one(CommandList)
        await wait_for(pilot, lambda: commands.option_count >= 8, "the palette's commands")
        titles = [str(commands.get_option_at_index(i).prompt).split("\n")[0] for i in range(commands.option_count)]
    assert titles[0] == "Start" and titles[-3:] == ["Theme", "Keys", "Quit"], titles
    assert not {"Screenshot", "Maximize", "Minimize"} & set(titles)
    assert titles.index("Help") < titles.index("Theme")


async def test_keys_that_would_do_nothing_while_idle_are_not_in_the_footer(tmp_path):
    app = CertRotateApp(offline_state(tmp_path))
    async with app.run_test(size=SIZE) as pilot:
        await home_ready(pilot)
        keys = footer_keys(app)
    assert "s" in keys and not {"n", "p", "b", "c"} & keys


# -- first run ---------------------------------------------------------------------------------------


async def test_first_run_hints_look_like_hints_and_the_delay_names_its_unit(tmp_path):
    app = CertRotateApp(tmp_path / "certrotate.toml")
    async with app.run_test(size=SIZE) as pilot:
        screen = await screen_shown(pilot, FirstRunScreen)
        for field_id in ("cluster-name", "node-name", "node-certs-dir", "node-sql-addr", "client-user"):
            assert screen.query_one(f"#{field_id}", Input).placeholder.startswith("e.g. "), field_id
        unit = screen.query_one("#cluster-leaf-delay").parent.query_one(".form-unit")
        assert str(unit.render()) == "days"


async def test_ctrl_q_over_a_filled_form_asks_before_discarding_it(tmp_path):
    path = tmp_path / "certrotate.toml"
    app = CertRotateApp(path)
    async with app.run_test(size=SIZE) as pilot:
        screen = await screen_shown(pilot, FirstRunScreen)
        await fill(pilot, {"cluster-name": "prod"})
        await pilot.press("ctrl+q")
        await screen_shown(pilot, DiscardFormScreen, "the discard question")
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is screen, "back on the form")
        assert app.is_running and screen.query_one("#cluster-name", Input).value == "prod"
        await pilot.press("ctrl+q")
        await screen_shown(pilot, DiscardFormScreen, "the discard question")
        await pilot.press("y")
        await wait_for(pilot, lambda: not app.is_running, "the wizard to quit")
    assert not path.exists() and not list(tmp_path.iterdir())


async def test_ctrl_q_over_an_empty_form_quits_at_once(tmp_path):
    app = CertRotateApp(tmp_path / "certrotate.toml")
    async with app.run_test(size=SIZE) as pilot:
        await screen_shown(pilot, FirstRunScreen)
        await pilot.press("ctrl+q")
        await wait_for(pilot, lambda: not app.is_running, "the wizard to quit")


async def test_writing_the_state_file_makes_the_ca_key_directory_the_owners_only(tmp_path):
    previous = os.umask(0o022)
    try:
        app = CertRotateApp(tmp_path / "certrotate.toml")
        async with app.run_test(size=SIZE) as pilot:
            await screen_shown(pilot, FirstRunScreen)
            await fill(pilot, {"cluster-name": "prod", "node-name": "n1", "node-ssh-host": "127.0.0.2",
                               "node-ssh-port": "1", "node-certs-dir": "/var/lib/cockroach/certs"})
            await pilot.press("ctrl+n")
            await pilot.press("ctrl+s")
            await home_ready(pilot)
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "safe").stat().st_mode) == 0o700
    assert not (tmp_path / "certrotate.toml.lock").exists()


# -- the wait, on a real lab ---------------------------------------------------------------------------


@pytest.fixture
def waiting(lab_factory):
    lab = demo_like_lab(lab_factory)
    cli_to_wait_phase(lab)
    return lab


@pytest.mark.lab
async def test_the_wait_lists_the_missing_confirmations_and_the_cards_follow_the_wizard_clock(waiting):
    app = CertRotateApp(waiting.state_path, demo=True)
    async with app.run_test(size=SIZE) as pilot:
        home = await home_ready(pilot)
        timeline = home.query_one(PhaseTimeline)
        assert "until" in stage_note(home, "wait") and "to confirm: root" in stage_note(home, "wait")
        panel = str(home.query_one(NextStepPanel).render())
        assert "Also still to confirm: root" in panel
        keys = footer_keys(app)
        assert "c" in keys and "s" not in keys  # root can be confirmed during the wait; nothing to start
        await pilot.press("n")  # before the date nothing would run: it says why instead of a plan
        await pilot.pause()
        assert not isinstance(app.screen, DryRunScreen)
        assert any("Nothing runs before" in str(n.message) for n in app._notifications)

        await pilot.press("t")
        await pilot.pause()
        assert "ended" in stage_note(home, "wait") and "due now" in stage_note(home, "leaf")
        assert timeline.status_of("wait") == "current"
        await confirm_all(pilot)
        assert "to confirm" not in stage_note(home, "wait")
        preview = await open_run_confirmation(pilot)  # past the date and confirmed: n shows the leaf step
        assert not preview.held and preview.plan


@pytest.mark.lab
async def test_the_rollback_dialog_and_result_say_what_root_needs_back_and_the_new_ca_key_goes(waiting):
    lab = waiting
    rotation_id = state_mod.load(lab.state_path).rotation["id"]
    new_key = lab.state_path.parent / "safe" / f"ca-{rotation_id}.key"
    assert new_key.exists()
    app = CertRotateApp(lab.state_path)
    async with app.run_test(size=SIZE) as pilot:
        await home_ready(pilot)
        await pilot.press("b")
        dialog = await screen_shown(pilot, RollbackScreen, "the rollback question")
        assert f"safe/ca-{rotation_id}.key" in dialog.summary and "(CA rotation)" in dialog.summary
        assert "root: the rotation exported ca.crt" in dialog.summary and "ca.crt from certs/ca.crt" in dialog.summary
        await pilot.press("y")
        run = await screen_shown(pilot, RunStepScreen, "the rollback run")
        await wait_for(pilot, lambda: run.finished, "the rollback to finish", timeout=120)
        assert not run.error, run.error
        outcome = str(run.query_one("#run-outcome").render())
        assert "Still to do by hand — root:" in outcome and "ca.crt from certs/ca.crt" in outcome
    assert not new_key.exists()
    assert not (lab.local_certs_dir / "export" / "root").exists()


@pytest.mark.lab
async def test_after_retire_the_wizard_says_where_the_old_ca_key_went(waiting):
    lab = waiting
    with state_mod.locked(lab.state_path):
        state = state_mod.load(lab.state_path)
        engine.confirm(state, ["root"])  # root has the new bundle (as the checklist records it)
        state_mod.save(state)
    leaf = certrotate(lab, "advance", "--now", FUTURE)  # the leaf step; retire then waits for root
    assert leaf.returncode == 0 and state_mod.load(lab.state_path).phase == "retire", leaf.stderr + leaf.stdout
    app = CertRotateApp(lab.state_path)
    async with app.run_test(size=SIZE) as pilot:
        await home_ready(pilot)
        await confirm_all(pilot)
        await open_run_confirmation(pilot)
        await pilot.press("enter")
        run = await screen_shown(pilot, RunStepScreen, "the retire run")
        await wait_for(pilot, lambda: run.finished, "the retire step", timeout=180)
        assert not run.error, run.error
        outcome = str(run.query_one("#run-outcome").render())
        assert "The old CA key was moved to safe/retired/ca.key" in outcome
        log = " ".join(" ".join(str(line.text) for line in run.query_one("#run-log").lines).split())  # unwrapped
        assert "give it the new bundle (nothing to confirm)" in log and "confirm delivery" not in log
        home = await back_home(pilot)
        assert "safe/retired/ca.key" in str(home.query_one("#message").render())
    assert (lab.state_path.parent / "safe" / "retired" / "ca.key").exists()
