"""No single key changes a node, and the keys of a text field are the operator's text.

`n` shows the plan of the next step and only Enter (or the Run button) runs it; the
rollback question's Cancel is not a letter the overview uses; typing into the Doctor's
Explain error field (every letter) fires no binding of any screen or of the app.
"""

from __future__ import annotations

import string

import pytest

from tests.rotation_support import certrotate, node_files
from tests.tui_helpers import (SIZE, demo_like_lab, home_ready, open_run_confirmation, screen_shown, wait_for)
from tui.app import CertRotateApp, is_printable_key
from tui.screens.doctor import DoctorScreen
from tui.screens.dry_run import DryRunScreen
from tui.screens.home import HomeScreen
from tui.screens.rollback import RollbackScreen
from tui.screens.run_step import RunStepScreen


def test_printable_keys_are_told_from_command_keys():
    assert all(is_printable_key(k) for k in ("t", "o", "Q", "7", "question_mark", "space", "full_stop"))
    assert not any(is_printable_key(k) for k in ("ctrl+q", "enter", "escape", "f1", "tab", "ctrl+p"))


@pytest.mark.lab
async def test_n_shows_the_plan_and_only_a_second_action_runs_it(lab_factory):
    lab = demo_like_lab(lab_factory)
    assert certrotate(lab, "start", "ca").returncode == 0
    files_before, state_before = node_files(lab), lab.state_path.read_bytes()
    app = CertRotateApp(lab.state_path)
    async with app.run_test(size=SIZE) as pilot:
        await home_ready(pilot)
        preview = await open_run_confirmation(pilot)
        assert preview.confirming and not preview.error, preview.error
        assert "Run the next step?" in str(preview.query_one("#dry-run-title").render())
        await pilot.press("n")  # pressing n again is not the second action
        await pilot.pause()
        assert app.screen is preview and not app.query(RunStepScreen)
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, HomeScreen), "the overview")
        await app.workers.wait_for_complete()
        assert node_files(lab) == files_before and lab.state_path.read_bytes() == state_before

        preview = await open_run_confirmation(pilot)
        await pilot.click("#dry-run-run")
        run = await screen_shown(pilot, RunStepScreen, "the run screen")
        await wait_for(pilot, lambda: run.finished, "the trust step", timeout=180)
        assert not run.error and app.state.phase == "wait"


@pytest.mark.lab
async def test_the_rollback_question_is_not_cancelled_by_the_run_key(lab_factory):
    lab = demo_like_lab(lab_factory)
    assert certrotate(lab, "start", "ca").returncode == 0
    app = CertRotateApp(lab.state_path)
    async with app.run_test(size=SIZE) as pilot:
        await home_ready(pilot)
        await pilot.press("b")
        dialog = await screen_shown(pilot, RollbackScreen, "the rollback question")
        await pilot.press("n")
        await pilot.pause()
        assert app.screen is dialog, "n must not answer the rollback question"
        assert "Cancel (esc)" in str(dialog.query_one("#rollback-no").label)
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, HomeScreen), "the overview")
        assert app.state.phase == "trust"


def _offline_state(tmp_path):
    path = tmp_path / "certrotate.toml"
    path.write_text('[cluster]\nname = "prod"\n\n[[nodes]]\nname = "n1"\nssh_host = "127.0.0.2"\nssh_port = 1\n'
                    'certs_dir = "/var/lib/cockroach/certs"\nsql_addr = "127.0.0.2:1"\n')
    return path


@pytest.mark.parametrize("click_first", [True, False], ids=["field focused", "focus elsewhere"])
async def test_every_letter_typed_into_explain_error_is_text_and_nothing_else(tmp_path, click_first):
    app = CertRotateApp(_offline_state(tmp_path), demo=True)  # the demo binds t (time travel)
    async with app.run_test(size=SIZE) as pilot:
        await home_ready(pilot)
        await pilot.press("d")
        screen = await screen_shown(pilot, DoctorScreen)
        await wait_for(pilot, lambda: screen.diagnosed >= 1, "the first diagnosis")
        if click_first:
            await pilot.click("#doctor-error")
        notices = len(app._notifications)
        typed = string.ascii_lowercase + string.ascii_uppercase + string.digits + " .:-_/"
        await pilot.press(*[c if c.isalnum() else {" ": "space", ".": "full_stop", ":": "colon", "-": "minus",
                                                       "_": "underscore", "/": "slash"}[c] for c in typed])
        await pilot.pause()
        assert app.screen is screen and len(app.screen_stack) == 2
        assert screen.query_one("#doctor-error").value == typed
        assert app.clock is None and len(app._notifications) == notices
        await pilot.press("enter")
        await pilot.pause()
        assert "Cause:" in str(screen.query_one("#doctor-explanation").render())
