"""The wizard's autopilot line on the overview, and the policy the first-run flow offers."""

from __future__ import annotations

import datetime as dt

from textual.widgets import Input, Select, Static

from core import pki
from core.config import state as state_mod
from tests.rotation_support import certrotate, edit_inventory
from tests.test_tui_first_run import fill
from tests.tui_helpers import SIZE, home_ready, screen_shown
from tui.app import CertRotateApp
from tui.screens.first_run import FirstRunScreen


async def test_the_overview_shows_policy_next_window_what_comes_next_and_the_last_run(lab):
    today = pki.utcnow().date()
    night = dt.datetime.combine(today, dt.time(1, 0), tzinfo=dt.timezone.utc)

    def policy(data):
        data["cluster"].update(node_lifetime_days=3000, client_lifetime_days=3000)
        data["autopilot"] = {"renew_before_days": 1900, "windows": ["0 2 * * *"]}
    edit_inventory(lab, policy)
    assert certrotate(lab, "autopilot", "--now", f"{night:%Y-%m-%dT%H:%MZ}").returncode == 0

    app = CertRotateApp(lab.state_path)
    async with app.run_test(size=SIZE) as pilot:
        app.clock = night
        home = await home_ready(pilot)
        await pilot.pause()
        line = str(home.query_one("#autopilot", Static).render())
    assert "leaves renewed 1900 d before expiry, CA 120 d; windows 0 2 * * * UTC" in line
    assert f"next window {today:%Y-%m-%d} 02:00 UTC" in line
    assert "next: start a nodes rotation (node.crt of n1 expires" in line and "at the next window" in line
    assert "UTC: outside-window" in line and "last run" in line


async def test_without_an_autopilot_table_the_overview_has_no_autopilot_line(lab):
    app = CertRotateApp(lab.state_path)
    async with app.run_test(size=SIZE) as pilot:
        home = await home_ready(pilot)
        assert not home.query_one("#autopilot", Static).display


async def test_first_run_offers_weekday_nights_and_writes_the_policy(tmp_path):
    path = tmp_path / "certrotate.toml"
    app = CertRotateApp(path)
    async with app.run_test(size=SIZE) as pilot:
        screen = await screen_shown(pilot, FirstRunScreen)
        assert screen.query_one("#autopilot-windows", Select).value == "nights"
        await fill(pilot, {"cluster-name": "prod", "node-name": "n1", "node-ssh-host": "127.0.0.1",
                           "node-ssh-port": "9", "node-certs-dir": "/var/lib/cockroach/certs"})
        await pilot.press("ctrl+n")
        screen.query_one("#autopilot-notify", Input).value = "webhook:https://hooks.example/certrotate"
        await pilot.press("ctrl+s")
        await pilot.pause()
        await app.workers.wait_for_complete()
    state = state_mod.load(path)
    assert state.policy.windows == ("0 2-4 * * 1-5",)
    assert state.policy.notify == ("webhook:https://hooks.example/certrotate",)
    assert state.policy.renew_before_days is None  # follows node_lifetime_days
