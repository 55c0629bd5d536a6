"""Rollback is behind a screen that says what will happen; confirmed, every host is back as before."""

from __future__ import annotations

import pytest

from core.config import state as state_mod
from tests.rotation_support import node_files
from tests.tui_helpers import SIZE, back_home, cli_to_wait_phase, demo_like_lab, home_ready, screen_shown, wait_for
from tui.app import CertRotateApp
from tui.screens.rollback import RollbackScreen
from tui.screens.run_step import RunStepScreen
from tui.widgets.phase_timeline import PhaseTimeline

pytestmark = pytest.mark.lab


@pytest.fixture
def waiting(lab_factory):
    lab = demo_like_lab(lab_factory)
    before = {name: files["ca.crt"] for name, files in node_files(lab).items()}
    cli_to_wait_phase(lab)
    return lab, before


async def test_the_rollback_screen_says_what_will_happen_to_each_kind_of_host(waiting):
    lab, _ = waiting
    app = CertRotateApp(lab.state_path)
    async with app.run_test(size=SIZE) as pilot:
        await home_ready(pilot)
        await pilot.press("b")
        await screen_shown(pilot, RollbackScreen, "the rollback question")
        summary = app.screen.summary
        assert "Nodes n1, n2, n3" in summary and "reloaded" in summary
        assert "Manually delivered clients (root)" in summary
        assert "phase returns to idle" in summary


async def test_a_confirmed_rollback_restores_every_node_and_returns_to_idle(waiting):
    lab, before = waiting
    app = CertRotateApp(lab.state_path)
    async with app.run_test(size=SIZE) as pilot:
        await home_ready(pilot)
        await pilot.press("b")
        await screen_shown(pilot, RollbackScreen, "the rollback question")
        await pilot.click("#rollback-yes")
        await screen_shown(pilot, RunStepScreen, "the rollback run")
        run = app.screen
        await wait_for(pilot, lambda: run.finished, "the rollback to finish", timeout=120)
        assert not run.error, run.error
        home = await back_home(pilot)
        assert home.query_one(PhaseTimeline).current == "idle"
    assert {name: files["ca.crt"] for name, files in node_files(lab).items()} == before
    assert state_mod.load(lab.state_path).history[-1]["outcome"] == "rolled back"


async def test_a_cancelled_rollback_changes_nothing(waiting):
    lab, _ = waiting
    state_before = lab.state_path.read_bytes()
    app = CertRotateApp(lab.state_path)
    async with app.run_test(size=SIZE) as pilot:
        await home_ready(pilot)
        await pilot.press("b")
        await screen_shown(pilot, RollbackScreen, "the rollback question")
        await pilot.press("escape")
        await pilot.pause()
        await app.workers.wait_for_complete()
    assert lab.state_path.read_bytes() == state_before
