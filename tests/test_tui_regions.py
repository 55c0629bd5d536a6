"""The wizard with regions: a Region column on the overview, and one progress line per region."""

from __future__ import annotations

import pytest
from textual.widgets import ProgressBar

from tests.rotation_support import edit_inventory
from tests.tui_helpers import SIZE, home_ready, run_next_step, start_ca_rotation, wait_for
from tui.app import CertRotateApp
from tui.widgets.host_progress import HostProgress
from tui.widgets.host_table import HostTable

pytestmark = pytest.mark.lab


@pytest.fixture
def regional(lab_factory):
    lab = lab_factory(4, clients=("root",))

    def regions(data):
        for node, region in zip(data["nodes"], ("east", "west", "east", "west")):
            node["region"] = region
        data["cluster"]["verify_timeout_seconds"] = 5
    edit_inventory(lab, regions)
    return lab


async def test_overview_shows_each_node_region_and_the_run_reports_each_region(regional):
    app = CertRotateApp(regional.state_path)
    async with app.run_test(size=SIZE) as pilot:
        home = await home_ready(pilot)
        table = home.query_one(HostTable)
        labels = table.labels
        assert labels[:3] == ["Host", "Region", "Where"]
        assert [table.value(n, "region") for n in ("n1", "n2", "n3", "n4")] == ["east", "west", "east", "west"]
        assert table.value("root", "region") == ""
        await wait_for(pilot, lambda: table.value("n4", "reachable") == "yes", "n4 seen reachable")

        await start_ca_rotation(pilot)
        run = await run_next_step(pilot)
        assert not run.error, run.error
        progress = run.query_one(HostProgress)
        assert progress.status["region east"] == "ok" and progress.status["region west"] == "ok"
        assert str(progress.get_cell("region east", "detail")) == "every node verified (n1, n3)"
        bar = run.query_one(ProgressBar)
        assert bar.total == 5 and bar.progress == 5  # four nodes and root; region lines are not hosts


async def test_overview_without_regions_has_no_region_column(lab):
    app = CertRotateApp(lab.state_path)
    async with app.run_test(size=SIZE) as pilot:
        home = await home_ready(pilot)
        labels = home.query_one(HostTable).labels
        assert "Region" not in labels and labels[:2] == ["Host", "Where"]
