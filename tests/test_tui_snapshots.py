"""Snapshots of the wizard's main screens (pytest-textual-snapshot; `--snapshot-update` to regenerate).

Nothing in them may vary from run to run:
- three nodes on 127.0.0.2 port 1, where nothing listens: the host refresh finds every node
  refused, always with the same sentence, and never waits on a timeout;
- the state file sits at one fixed path (a symlink to tmp_path), because the home screen shows it;
  a lock file keeps two runs of these tests from sharing that path at once;
- the rotation's dates are fixed, and so is the clock: `tui.app.real_now`, which `app.now()` reads, and
  `core.pki.utcnow`, which core reads.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import os
from pathlib import Path

import pytest

from core import pki
from core.config import state as state_mod
from tests.tui_helpers import SIZE, home_ready, screen_shown
from tui import app as tui_app
from tui.app import CertRotateApp

FIXED_DIR = Path("/tmp/certrotate-snapshot")
STARTED = dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc)
NOW = STARTED + dt.timedelta(days=1, hours=6)

INVENTORY = '[cluster]\nname = "prod"\n' + "".join(
    f'\n[[nodes]]\nname = "n{i}"\nssh_host = "127.0.0.2"\nssh_port = 1\ncerts_dir = "/var/lib/cockroach/certs"\n'
    for i in (1, 2, 3)
) + '\n[[clients]]\nuser = "root"\n'


@pytest.fixture
def state_path(tmp_path, monkeypatch) -> Path:
    """The fixed state file path, pointing into tmp_path; the clock stands still at NOW."""
    monkeypatch.setattr(pki, "utcnow", lambda: NOW)
    monkeypatch.setattr(tui_app, "real_now", lambda: NOW)
    with open(f"{FIXED_DIR}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        with contextlib.suppress(FileNotFoundError):
            FIXED_DIR.unlink()
        FIXED_DIR.symlink_to(tmp_path, target_is_directory=True)
        try:
            path = FIXED_DIR / "certrotate.toml"
            path.write_text(INVENTORY)
            yield path
        finally:
            os.unlink(FIXED_DIR)


def waiting_rotation(path: Path) -> None:
    """A CA rotation whose trust step finished on STARTED and that waits 30 days for its leaf step."""
    state = state_mod.load(path)
    state.rotation = {
        "id": "r20300101",
        "kind": "ca",
        "phase": "wait",
        "started": STARTED,
        "trust_done_at": STARTED,
        "wait_until": STARTED + dt.timedelta(days=30),
        "nodes": {f"n{i}": {"trust": "done"} for i in (1, 2, 3)},
        "clients": {"root": {"trust": "done"}},
    }
    state_mod.save(state)


async def refreshed(pilot) -> None:
    await home_ready(pilot)
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


def test_home_idle_shows_the_cluster_and_every_host_refused(snap_compare, state_path):
    assert snap_compare(CertRotateApp(state_path), terminal_size=SIZE, run_before=refreshed)


def test_home_in_phase_wait_names_the_date_and_the_days_left(snap_compare, state_path):
    waiting_rotation(state_path)
    assert snap_compare(CertRotateApp(state_path), terminal_size=SIZE, run_before=refreshed)


def test_start_screen_offers_every_kind(snap_compare, state_path):
    async def start_screen(pilot) -> None:
        from tui.screens.start import StartScreen

        await refreshed(pilot)
        await pilot.press("s")
        await screen_shown(pilot, StartScreen)

    assert snap_compare(CertRotateApp(state_path), terminal_size=SIZE, run_before=start_screen)


def test_help_screen_lists_the_home_keys(snap_compare, state_path):
    async def help_screen(pilot) -> None:
        from tui.screens.help import HelpScreen

        await refreshed(pilot)
        await pilot.press("question_mark")
        await screen_shown(pilot, HelpScreen)

    assert snap_compare(CertRotateApp(state_path), terminal_size=SIZE, run_before=help_screen)
