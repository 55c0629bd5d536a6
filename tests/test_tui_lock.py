"""While the wizard is open it holds the state file's lock: another certrotate exits 3."""

from __future__ import annotations

import asyncio

import pytest

from core.config import state as state_mod
from tests.rotation_support import certrotate
from tests.tui_helpers import SIZE, home_ready, open_run_confirmation
from tui.app import CertRotateApp

pytestmark = pytest.mark.lab


async def test_advance_elsewhere_exits_3_while_the_wizard_is_open(lab):
    app = CertRotateApp(lab.state_path)
    async with app.run_test(size=SIZE) as pilot:
        await home_ready(pilot)
        result = await asyncio.to_thread(certrotate, lab, "advance")
    assert result.returncode == 3
    assert "is open in the certrotate wizard" in result.stderr and "quit the wizard (q)" in result.stderr


async def test_the_lock_is_released_when_the_wizard_quits(lab):
    app = CertRotateApp(lab.state_path)
    async with app.run_test(size=SIZE) as pilot:
        await home_ready(pilot)
        await pilot.press("q")
    result = await asyncio.to_thread(certrotate, lab, "advance")
    assert result.returncode == 0, result.stderr


async def test_a_second_wizard_on_the_same_state_file_exits_3(lab):
    first = CertRotateApp(lab.state_path)
    async with first.run_test(size=SIZE) as pilot:
        await home_ready(pilot)
        second = CertRotateApp(lab.state_path)
        async with second.run_test(size=SIZE):
            pass
    assert second.return_code == 3


async def test_sigterm_mid_step_quits_only_after_the_step_and_keeps_the_lock_until_then(lab):
    """Under `textual serve`, SIGTERM and a closed browser tab reach the app as ExitApp."""
    from textual import messages

    from tests.rotation_support import set_node_reload
    from tests.tui_helpers import wait_for
    from tui.screens.run_step import RunStepScreen

    assert certrotate(lab, "start", "ca").returncode == 0
    set_node_reload(lab, "n3", f"sleep 3; {lab.nodes[2].reload_command}")
    app = CertRotateApp(lab.state_path)
    async with app.run_test(size=SIZE) as pilot:
        await home_ready(pilot)
        await open_run_confirmation(pilot)
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, RunStepScreen) and app.core_work_running(),
                       "the trust step to run")
        app.post_message(messages.ExitApp())
        await pilot.pause(0.5)
        assert app.return_code is None and app.core_work_running()
        held = await asyncio.to_thread(certrotate, lab, "advance")
        assert held.returncode == 3
        deadline = asyncio.get_running_loop().time() + 180
        while app.return_code is None and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.1)
        assert app.return_code == 0
    assert state_mod.load(lab.state_path).phase == "wait"
    after = await asyncio.to_thread(certrotate, lab, "advance")
    assert after.returncode != 3, after.stderr


async def test_sigterm_while_a_step_waits_on_a_host_key_question_declines_it_and_quits(lab):
    from textual import messages

    from tests.test_tui_host_key import forget_host
    from tests.tui_helpers import screen_shown
    from tui.screens.host_key import HostKeyScreen

    assert certrotate(lab, "start", "ca").returncode == 0
    app = CertRotateApp(lab.state_path)
    async with app.run_test(size=SIZE) as pilot:
        await home_ready(pilot)
        forget_host(lab, lab.nodes[1])
        await pilot.press("n")
        await screen_shown(pilot, HostKeyScreen, "the host-key question of the step")
        app.post_message(messages.ExitApp())
        deadline = asyncio.get_running_loop().time() + 30
        while app.return_code is None and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.1)
        assert app.return_code == 0
    state = state_mod.load(lab.state_path)
    assert state.phase == "trust" and not state.rotation.get("trust_done_at")
    assert (await asyncio.to_thread(certrotate, lab, "status")).returncode == 0
    assert (await asyncio.to_thread(certrotate, lab, "rollback")).returncode != 3
