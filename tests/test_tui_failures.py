"""When a node does not take its new certificate, the wizard says why, and the node is back as it was."""

from __future__ import annotations

import pytest

from core.config import state as state_mod
from core.remote.probes import probe_sql
from core.rotation import engine
from tests.rotation_support import set_node_reload
from tests.tui_helpers import SIZE, back_home, cli_to_wait_phase, demo_like_lab, home_ready, run_next_step
from tui.app import CertRotateApp
from tui.widgets.next_step import NextStepPanel

pytestmark = pytest.mark.lab


@pytest.fixture
def stuck_canary(lab_factory):
    """A rotation waiting for its leaf phase, whose canary n1 'reloads' with `true` (keeps the old cert)."""
    lab = demo_like_lab(lab_factory)
    cli_to_wait_phase(lab)
    state = state_mod.load(lab.state_path)
    engine.confirm(state, ["root"])
    state_mod.save(state)
    set_node_reload(lab, "n1", "true")
    return lab


async def test_a_node_that_keeps_its_old_certificate_stops_the_leaf_phase_with_the_reason(stuck_canary):
    served_before = probe_sql(stuck_canary.nodes[0].sql_addr).fingerprint
    app = CertRotateApp(stuck_canary.state_path, demo=True)
    async with app.run_test(size=SIZE) as pilot:
        await home_ready(pilot)
        await pilot.press("t")
        run = await run_next_step(pilot)
        assert run.error.startswith("n1 ") and "still serves certificate" in run.error
        assert "previous certificate was restored" in run.error
        assert run.error in str(run.query_one("#run-outcome").render())
        home = await back_home(pilot)
        assert home.query_one(NextStepPanel).step.last_error == run.error
    assert probe_sql(stuck_canary.nodes[0].sql_addr).fingerprint == served_before
    assert state_mod.load(stuck_canary.state_path).phase == "leaf"
