"""The wizard on a cluster whose certificates expired: the overview says so and leads to recovery."""

from __future__ import annotations

import datetime as dt

import pytest

from core import pki
from core.pki import sha256_fingerprint
from tests.rotation_support import certs_in, edit_inventory, served
from tests.tui_helpers import SIZE, back_home, confirm_all, home_ready, run_next_step, wait_for
from tui.app import CertRotateApp
from tui.widgets.next_step import NextStepPanel

pytestmark = pytest.mark.lab


async def test_the_overview_of_an_expired_cluster_leads_to_its_recovery(lab_factory):
    now = pki.utcnow()
    lab = lab_factory(2, issued_at=now - dt.timedelta(days=2), ca_lifetime=dt.timedelta(hours=36))
    edit_inventory(lab, lambda data: data["cluster"].update(verify_timeout_seconds=5))
    old_ca = certs_in(lab.local_certs_dir / "ca.crt")[0]
    app = CertRotateApp(lab.state_path)
    async with app.run_test(size=SIZE) as pilot:
        home = await home_ready(pilot)
        step = home.query_one(NextStepPanel).step
        assert step.title == "Recover the cluster: its certificates have expired"
        assert "The CA expired on" in step.reason and step.hint == "Press s, then 7 (Recover an expired cluster)."
        assert "the cluster is down" in str(home.query_one("#cluster-title").render())

        await pilot.press("s")
        await pilot.press("7")
        await wait_for(pilot, lambda: app.state.phase == "leaf", "the recovery to start")
        await pilot.pause()
        step = home.query_one(NextStepPanel).step
        assert step.title == "Run the recovery" and "Skipping the usual wait is safe" in step.reason

        run = await run_next_step(pilot)   # every node at once; then the manual client's confirmation
        assert not run.error, run.error
        await back_home(pilot)
        await confirm_all(pilot)
        run = await run_next_step(pilot)
        assert "finished" in run.summary, run.summary
        await back_home(pilot)

    new_ca = certs_in(lab.local_certs_dir / "ca.crt")
    assert len(new_ca) == 1 and sha256_fingerprint(new_ca[0]) != sha256_fingerprint(old_ca)
    for node in lab.nodes:
        served(lab, node).verify_directly_issued_by(new_ca[0])


async def test_a_ca_rotation_that_would_outlast_its_ca_asks_for_a_shorter_wait(lab_factory):
    from textual.widgets import Input

    from core.config import state as state_mod
    from core.config.record import RotationRecord
    from tests.tui_helpers import screen_shown
    from tui.screens.short_wait import ShortWaitScreen

    lab = lab_factory(1, ca_lifetime=dt.timedelta(days=10))
    app = CertRotateApp(lab.state_path)
    async with app.run_test(size=SIZE) as pilot:
        await home_ready(pilot)
        await pilot.press("s")
        await pilot.press("1")
        dialog = await screen_shown(pilot, ShortWaitScreen, "the shorter-wait question")
        assert "sooner than the 30-day wait" in dialog.sentence and dialog.longest == 8
        assert app.state.rotation == {}  # nothing started before the operator chose
        field = dialog.query_one("#short-wait-days", Input)
        field.value = "12"
        await pilot.click("#short-wait-start")
        await pilot.pause()
        assert isinstance(app.screen, ShortWaitScreen)  # 12 days would outlast the CA: refused on the spot
        field.value = "5"
        field.focus()
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.state.phase == "trust", "the rotation to start")
    record = RotationRecord(state_mod.load(lab.state_path).rotation)
    assert record.wait_days == 5 and "shortened from 30 to 5 days: the CA expires on" in record.wait_reason
