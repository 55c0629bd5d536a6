"""What the wizard and `status` say is true: a failed step is the last error, a rollback always has a way
out, and from the wait gate the preview shows the leaf step the wizard's clock will let run."""

from __future__ import annotations

import json

import pytest

from core.config import state as state_mod
from tests.rotation_support import certrotate, node_files
from tests.tui_helpers import (SIZE, back_home, demo_like_lab, home_ready, run_next_step, screen_shown, wait_for,
                               cli_to_wait_phase)
from tui.app import CertRotateApp
from tui.screens.rollback import RollbackScreen
from tui.screens.run_step import RunStepScreen
from tui.widgets.next_step import NextStepPanel
from tui.widgets.phase_timeline import PhaseTimeline

pytestmark = pytest.mark.lab


def status(lab) -> dict:
    result = certrotate(lab, "status", "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


async def test_a_failed_step_is_the_last_error_until_the_next_run_succeeds(lab_factory):
    lab = demo_like_lab(lab_factory)
    assert certrotate(lab, "start", "ca").returncode == 0
    lab.nodes[2].stop_sshd()
    app = CertRotateApp(lab.state_path)
    async with app.run_test(size=SIZE) as pilot:
        await home_ready(pilot)
        run = await run_next_step(pilot)
        assert run.error and "n3" in run.error
        home = await back_home(pilot)
        assert home.query_one(NextStepPanel).step.last_error == run.error
    recorded = status(lab)
    assert recorded["last_error"] == run.error and recorded["last_error_step"] == "trust"
    assert "T" in recorded["last_error_at"]

    lab.nodes[2].start_sshd()
    assert certrotate(lab, "advance").returncode == 0
    recorded = status(lab)
    assert recorded["phase"] == "wait" and recorded["last_error"] is None and recorded["last_error_step"] is None


async def test_rollback_restores_the_touched_nodes_and_skips_an_unreachable_untouched_one(lab_factory):
    lab = demo_like_lab(lab_factory)
    before = {name: files["ca.crt"] for name, files in node_files(lab).items()}
    assert certrotate(lab, "start", "ca").returncode == 0
    lab.nodes[2].stop_sshd()
    failed = certrotate(lab, "advance")
    assert failed.returncode == 1 and "n3" in failed.stderr
    assert node_files(lab)["n1"]["ca.crt"] != before["n1"]  # n1 and n2 took the new bundle

    app = CertRotateApp(lab.state_path)
    async with app.run_test(size=SIZE) as pilot:
        await home_ready(pilot)
        await pilot.press("b")
        await screen_shown(pilot, RollbackScreen, "the rollback question")
        await pilot.click("#rollback-yes")
        run = await screen_shown(pilot, RunStepScreen, "the rollback run")
        await wait_for(pilot, lambda: run.finished, "the rollback", timeout=180)
        assert not run.error, run.error
        log = "\n".join(str(line) for line in run.query_one("#run-log").lines)
        assert "n3" in log and "never changed n3" in log
        home = await back_home(pilot)
        assert home.query_one(PhaseTimeline).current == "idle"
    after = node_files(lab)
    assert after["n1"]["ca.crt"] == before["n1"] and after["n2"]["ca.crt"] == before["n2"]
    assert state_mod.load(lab.state_path).history[-1]["outcome"] == "rolled back"


async def test_from_the_wait_gate_the_preview_shows_the_leaf_step_and_follows_the_wizard_clock(lab_factory):
    lab = demo_like_lab(lab_factory)
    cli_to_wait_phase(lab)
    app = CertRotateApp(lab.state_path, demo=True)
    async with app.run_test(size=SIZE) as pilot:
        await home_ready(pilot)
        await pilot.press("p")
        preview = await open_preview_done(pilot)
        assert preview.held and "node.crt" in "\n".join(preview.query_one("#plan").lines())
        gate = str(preview.query_one("#dry-run-gate").render())
        assert "leaf step as it will run once the schedule gate opens" in gate
        digest = preview.digest
        await pilot.press("escape")
        await home_ready(pilot)

        await pilot.press("t")  # time travel past the date: now only the client root's confirmation holds it
        await pilot.pause()
        assert app.screen.query_one(PhaseTimeline).status_of("wait") == "current"
        await pilot.press("p")
        preview = await open_preview_done(pilot)
        gate = str(preview.query_one("#dry-run-gate").render())
        assert "confirm gate" in gate and "root" in gate
        assert preview.digest == digest  # the same leaves, whichever gate holds them


async def open_preview_done(pilot):
    from tui.screens.dry_run import DryRunScreen

    preview = await screen_shown(pilot, DryRunScreen, "the preview")
    await wait_for(pilot, lambda: preview.ready, "the plan", timeout=120)
    await pilot.pause()
    assert not preview.error, preview.error
    return preview
