"""While the wizard is open it holds the state file's lock: another certrotate exits 3."""

from __future__ import annotations

import asyncio

import pytest

from tests.rotation_support import certrotate
from tests.tui_helpers import SIZE, home_ready
from tui.app import CertRotateApp

pytestmark = pytest.mark.lab


async def test_advance_elsewhere_exits_3_while_the_wizard_is_open(lab):
    app = CertRotateApp(lab.state_path)
    async with app.run_test(size=SIZE) as pilot:
        await home_ready(pilot)
        result = await asyncio.to_thread(certrotate, lab, "advance")
    assert result.returncode == 3
    assert "is in use by certrotate" in result.stderr


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
