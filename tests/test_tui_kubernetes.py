"""The wizard on a Kubernetes-delivered cluster: each region's gate shows its manifest and kubectl commands."""

from __future__ import annotations

import base64

from core.config.state import load
from core.rotation import kubernetes_manifests as k8s
from tests.kubernetes_support import write_cluster
from tests.tui_helpers import (
    SIZE,
    back_home,
    confirm_all,
    home_ready,
    run_next_step,
    screen_shown,
    start_ca_rotation,
    wait_for,
)
from tui.app import CertRotateApp
from tui.screens.confirm_gate import ConfirmGateScreen
from tui.widgets.host_table import HostTable
from tui.widgets.next_step import NextStepPanel


async def open_gate(pilot) -> ConfirmGateScreen:
    await pilot.press("c")
    return await screen_shown(pilot, ConfirmGateScreen, "the region checklist")


async def tick_and_confirm(pilot) -> None:
    app = pilot.app
    await pilot.press("a")
    await pilot.press("ctrl+s")
    await wait_for(pilot, lambda: not isinstance(app.screen, ConfirmGateScreen), "the checklist to close")
    await app.workers.wait_for_complete()
    await pilot.pause()


async def test_the_wizard_walks_region_gates_with_commands_to_copy_and_no_key_material(tmp_path):
    state_path = write_cluster(tmp_path)
    app = CertRotateApp(state_path, demo=True)
    async with app.run_test(size=SIZE) as pilot:
        home = await home_ready(pilot)
        table = home.query_one(HostTable)
        assert table.value("n1", "reachable") == "via Secret" and "k8s eu/cockroachdb" in table.value("n1", "where")
        await start_ca_rotation(pilot)
        assert "new CA added second in ca.crt" in home.query_one(NextStepPanel).step.reason

        run = await run_next_step(pilot)                           # writes region eu's add manifest, stops
        assert "waiting for your confirmation" in run.summary and "region eu" in run.summary
        home = await back_home(pilot)
        step = home.query_one(NextStepPanel).step
        assert step.kind == "confirm" and step.items == ("region eu",)

        gate = await open_gate(pilot)
        shown = str(gate.query_one("#kubernetes-commands").render())
        manifest = tmp_path / load(state_path).rotation["kubernetes"]["eu"]["add_manifest"]
        assert f"# manifest {manifest}" in shown
        assert f"kubectl -n eu patch secret cockroachdb-node --type merge --patch-file {manifest}" in shown
        assert "kubectl -n eu rollout restart statefulset/cockroachdb" in shown
        assert "kubectl -n eu rollout status statefulset/cockroachdb" in shown
        await pilot.press("y")
        assert app.clipboard == gate.commands
        await tick_and_confirm(pilot)
        assert load(state_path).rotation["kubernetes"]["eu"]["add"] == "confirmed"

        run = await run_next_step(pilot)                           # add eu done, add us written
        assert not run.error and "region us" in run.summary
        await back_home(pilot)
        await open_gate(pilot)
        await tick_and_confirm(pilot)
        run = await run_next_step(pilot)                           # add us done: phase wait
        home = await back_home(pilot)
        assert app.state.phase == "wait"

        await pilot.press("t")                                     # time travel past the wait
        run = await run_next_step(pilot)                           # the client root must be confirmed first
        await back_home(pilot)
        await confirm_all(pilot)
        run = await run_next_step(pilot)                           # promote eu written
        assert "promote in region eu" in run.summary
        await back_home(pilot)
        gate = await open_gate(pilot)
        screen_text = app.export_screenshot()
        promote = k8s.decode_manifest((tmp_path / app.state.rotation["kubernetes"]["eu"]["promote_manifest"]).read_bytes())
        assert "03-promote-eu.yaml" in str(gate.query_one("#kubernetes-commands").render())
        assert "PRIVATE KEY" not in screen_text and "PRIVATE KEY" not in gate.commands
        assert base64.b64encode(promote["node.key"]).decode()[:24] not in screen_text + gate.commands
        await tick_and_confirm(pilot)
        run = await run_next_step(pilot)
        assert "promote in region us" in run.summary


async def test_a_rollback_in_the_wizard_is_a_region_checklist_then_idle(tmp_path):
    from tui.screens.rollback import RollbackScreen
    from tui.screens.run_step import RunStepScreen

    state_path = write_cluster(tmp_path)
    bundle_before = (tmp_path / "certs" / "ca.crt").read_bytes()
    app = CertRotateApp(state_path)
    async with app.run_test(size=SIZE) as pilot:
        await home_ready(pilot)
        await start_ca_rotation(pilot)
        await run_next_step(pilot)                                 # add eu written
        await back_home(pilot)
        await pilot.press("b")
        question = await screen_shown(pilot, RollbackScreen, "the rollback question")
        assert "restores its Secret" in question.summary and "backups taken on upload" not in question.summary
        await pilot.press("y")
        run = await screen_shown(pilot, RunStepScreen, "the rollback run")
        await wait_for(pilot, lambda: run.finished, "the rollback manifests")
        assert "waiting for your confirmation" in run.summary and "region eu" in run.summary
        await back_home(pilot)
        gate = await open_gate(pilot)
        assert "07-rollback-eu.yaml" in gate.commands
        await tick_and_confirm(pilot)
        run = await run_next_step(pilot)
        assert "finished" in run.summary
    assert load(state_path).history[-1]["outcome"] == "rolled back"
    assert (tmp_path / "certs" / "ca.crt").read_bytes() == bundle_before
