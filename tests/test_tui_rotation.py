"""The wizard walks a whole CA rotation on a real 3-node cluster, as an operator at the keyboard would."""

from __future__ import annotations

import pytest
from textual.widgets import ProgressBar

from core.remote.probes import probe_sql
from tests.rotation_support import certs_in
from tests.tui_helpers import (
    SIZE,
    back_home,
    confirm_all,
    demo_like_lab,
    home_ready,
    open_run_confirmation,
    run_next_step,
    start_ca_rotation,
    wait_for,
)
from tui.app import CertRotateApp
from tui.widgets.host_progress import HostProgress
from tui.widgets.host_table import HostTable
from tui.widgets.next_step import NextStepPanel
from tui.widgets.phase_timeline import PhaseTimeline

pytestmark = pytest.mark.lab


@pytest.fixture
def cluster(lab_factory):
    return demo_like_lab(lab_factory)


async def test_a_whole_ca_rotation_goes_from_start_to_idle(cluster):
    app = CertRotateApp(cluster.state_path, demo=True)
    async with app.run_test(size=SIZE) as pilot:
        home = await home_ready(pilot)
        await start_ca_rotation(pilot)
        assert home.query_one(PhaseTimeline).current == "trust"

        run = await run_next_step(pilot)                          # trust
        assert not run.error, run.error
        home = await back_home(pilot)
        assert home.query_one(PhaseTimeline).current == "wait"
        assert home.query_one(NextStepPanel).step.kind == "schedule"

        await pilot.press("t")                                    # time travel past the wait
        run = await run_next_step(pilot)                          # stops: root must be confirmed
        assert "confirmation" in run.summary
        await back_home(pilot)
        await confirm_all(pilot)

        run = await run_next_step(pilot)                          # leaf, then retire stops at root again
        assert not run.error, run.error
        home = await back_home(pilot)
        assert home.query_one(PhaseTimeline).current == "retire"
        await confirm_all(pilot)

        run = await run_next_step(pilot)                          # retire
        assert "finished" in run.summary
        home = await back_home(pilot)
        assert home.query_one(PhaseTimeline).current == "idle"
        assert app.state.history[-1]["outcome"] == "done"

    [new_ca] = certs_in(cluster.local_certs_dir / "ca.crt")
    for node in cluster.nodes:
        probe_sql(node.sql_addr).leaf.verify_directly_issued_by(new_ca)


async def test_the_trust_step_shows_every_host_done_and_a_full_progress_bar(cluster):
    app = CertRotateApp(cluster.state_path)
    async with app.run_test(size=SIZE) as pilot:
        await home_ready(pilot)
        await start_ca_rotation(pilot)
        run = await run_next_step(pilot)
        progress = run.query_one(HostProgress)
        assert progress.status == {"n1": "ok", "n2": "ok", "n3": "ok", "root": "ok", f"app@{cluster.client_host('app').address}": "ok"}
        bar = run.query_one(ProgressBar)
        assert bar.total == 5 and bar.progress == 5


async def test_after_the_trust_step_every_node_holds_the_old_and_the_new_ca(cluster):
    app = CertRotateApp(cluster.state_path)
    async with app.run_test(size=SIZE) as pilot:
        home = await home_ready(pilot)
        await start_ca_rotation(pilot)
        await run_next_step(pilot)
        before = home.refreshes
        home = await back_home(pilot)
        await wait_for(pilot, lambda: home.refreshes > before, "the host refresh after the step")
        table = home.query_one(HostTable)
        assert [table.value(n.name, "bundle") for n in cluster.nodes] == ["old + new"] * 3
        assert all(table.value(n.name, "reachable") == "yes" for n in cluster.nodes)


async def test_time_travel_moves_the_wizard_clock_past_the_wait(cluster):
    from tests.tui_helpers import cli_to_wait_phase

    cli_to_wait_phase(cluster)
    app = CertRotateApp(cluster.state_path, demo=True)
    async with app.run_test(size=SIZE) as pilot:
        home = await home_ready(pilot)
        assert home.query_one(NextStepPanel).step.kind == "schedule"
        await pilot.press("t")
        await pilot.pause()
        assert app.clock > app.state.rotation["wait_until"]
        assert home.query_one(NextStepPanel).step.kind == "confirm"


async def test_time_travel_is_not_offered_outside_the_demo(cluster):
    app = CertRotateApp(cluster.state_path)
    async with app.run_test(size=SIZE) as pilot:
        await home_ready(pilot)
        assert "t" not in app.screen.active_bindings
        await pilot.press("t")
        assert app.clock is None


async def test_quitting_in_the_middle_of_a_step_is_refused_until_it_finishes(cluster):
    from tests.tui_helpers import screen_shown
    from tui.screens.run_step import RunStepScreen

    app = CertRotateApp(cluster.state_path)
    async with app.run_test(size=SIZE) as pilot:
        await home_ready(pilot)
        await start_ca_rotation(pilot)
        await open_run_confirmation(pilot)
        await pilot.press("enter")
        run = await screen_shown(pilot, RunStepScreen, "the run screen")
        await pilot.press("q")
        assert app.is_running and not run.finished
        await wait_for(pilot, lambda: run.finished, "the step to finish")
        await pilot.press("q")
        await wait_for(pilot, lambda: not app.is_running, "the app to quit")
