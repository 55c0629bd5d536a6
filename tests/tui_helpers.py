"""Helpers for the wizard's Pilot tests: a lab shaped like the demo, and waiting on events, not time."""

from __future__ import annotations

import asyncio
import time
from typing import Callable

from textual.pilot import Pilot

from core.lab.cluster import Lab
from tests.rotation_support import certrotate, edit_inventory

SIZE = (140, 45)
DEADLINE = 90.0


def demo_like_lab(lab_factory) -> Lab:
    """3 nodes, client `app` delivered over SSH, client `root` delivered by hand; quick verify timeout."""
    lab = lab_factory(3, ssh_clients=("app",))

    def quick(data):
        data["cluster"]["verify_timeout_seconds"] = 5

    edit_inventory(lab, quick)
    return lab


async def wait_for(pilot: Pilot, condition: Callable[[], bool], what: str, timeout: float = DEADLINE) -> None:
    """Let the app run until `condition()` holds (polled between event-loop turns)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.02)


async def screen_shown(pilot: Pilot, screen_type: type, what: str = ""):
    """The screen on top once it is of `screen_type` and composed."""
    app = pilot.app
    await wait_for(pilot, lambda: isinstance(app.screen, screen_type) and app.screen.is_mounted
                   and bool(app.screen.children), what or screen_type.__name__)
    await pilot.pause()
    return app.screen


async def home_ready(pilot: Pilot):
    """The home screen once its first host refresh is shown."""
    from tui.screens.home import HomeScreen

    await wait_for(pilot, lambda: isinstance(pilot.app.screen, HomeScreen), "the home screen")
    home = pilot.app.screen
    await wait_for(pilot, lambda: home.refreshes >= 1, "the first host refresh")
    return home


async def start_ca_rotation(pilot: Pilot) -> None:
    """From the home screen: s, pick "CA rotation", and wait until the rotation is in phase trust."""
    await pilot.press("s")
    await pilot.click("#start-ca")
    await wait_for(pilot, lambda: pilot.app.state.phase == "trust", "the rotation to start")


async def run_next_step(pilot: Pilot):
    """Press n on the home screen, then Enter on the plan it shows; wait until the run screen has finished."""
    from tui.screens.run_step import RunStepScreen

    await open_run_confirmation(pilot)
    await pilot.press("enter")
    run = await screen_shown(pilot, RunStepScreen, "the run screen")
    await wait_for(pilot, lambda: run.finished, "the step to finish", timeout=180)
    await pilot.pause()
    return run


async def open_run_confirmation(pilot: Pilot):
    """Press n on the home screen: the plan of the next step, shown once it is made (nothing runs yet)."""
    from tui.screens.dry_run import DryRunScreen

    await pilot.press("n")
    preview = await screen_shown(pilot, DryRunScreen, "the run confirmation")
    await wait_for(pilot, lambda: preview.ready, "the plan of the next step", timeout=120)
    await pilot.pause()
    return preview


async def back_home(pilot: Pilot):
    from tui.screens.home import HomeScreen

    await pilot.press("escape")
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, HomeScreen), "the home screen")
    await pilot.pause()
    return pilot.app.screen


async def confirm_all(pilot: Pilot) -> None:
    """Open the checklist, tick every client, confirm, and wait until it is recorded."""
    from tui.screens.confirm_gate import ConfirmGateScreen

    app = pilot.app
    await pilot.press("c")
    await screen_shown(pilot, ConfirmGateScreen, "the checklist")
    await pilot.press("a")
    await pilot.press("ctrl+s")
    await wait_for(pilot, lambda: not isinstance(app.screen, ConfirmGateScreen), "the checklist to close")
    await app.workers.wait_for_complete()
    await pilot.pause()


def cli_to_wait_phase(lab: Lab) -> None:
    """Start a CA rotation and run its trust step with the CLI (set-up, not what a test claims)."""
    for args in (("start", "ca"), ("advance",)):
        result = certrotate(lab, *args)
        assert result.returncode == 0, result.stderr



async def in_thread(function, *args):
    return await asyncio.to_thread(function, *args)
