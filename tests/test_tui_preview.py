"""The preview lists, per host, the exact files and commands of the next step, and changes nothing."""

from __future__ import annotations

import pytest

from tests.rotation_support import certrotate, node_files
from tests.tui_helpers import SIZE, demo_like_lab, home_ready, screen_shown, wait_for
from tui.app import CertRotateApp
from tui.screens.dry_run import DryRunScreen
from tui.screens.run_step import RunStepScreen
from tui.widgets.plan_view import PlanView

pytestmark = pytest.mark.lab


@pytest.fixture
def started(lab_factory):
    lab = demo_like_lab(lab_factory)
    assert certrotate(lab, "start", "ca").returncode == 0
    return lab


async def test_the_preview_shows_every_file_and_command_per_host_and_changes_nothing(started):
    lab = started
    files_before, state_before = node_files(lab), lab.state_path.read_bytes()
    app = CertRotateApp(lab.state_path)
    async with app.run_test(size=SIZE) as pilot:
        await home_ready(pilot)
        await pilot.press("p")
        preview = await screen_shown(pilot, DryRunScreen, "the preview")
        await wait_for(pilot, lambda: preview.plan is not None or preview.error, "the plan")
        assert not preview.error, preview.error
        lines = preview.query_one(PlanView).lines()
        for node in lab.nodes:
            assert preview.plan[node.name][0].startswith(f"write {node.certs_dir}/ca.crt")
            assert f"run `{node.reload_command}` (reload)" in lines
    assert node_files(lab) == files_before
    assert lab.state_path.read_bytes() == state_before


async def test_enter_on_the_preview_runs_the_step(started):
    app = CertRotateApp(started.state_path)
    async with app.run_test(size=SIZE) as pilot:
        await home_ready(pilot)
        await pilot.press("p")
        preview = await screen_shown(pilot, DryRunScreen, "the preview")
        await wait_for(pilot, lambda: preview.plan is not None, "the plan")
        await pilot.press("enter")
        run = await screen_shown(pilot, RunStepScreen, "the run screen")
        await wait_for(pilot, lambda: run.finished, "the step to finish", timeout=120)
        assert not run.error and app.state.phase == "wait"
