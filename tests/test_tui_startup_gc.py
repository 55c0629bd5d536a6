"""The garbage collector waits while the wizard starts (tui/startup_gc.py) and never stays off after."""

from __future__ import annotations

import gc

from tests.tui_helpers import SIZE, home_ready
from tui import cli
from tui.app import CertRotateApp

OFFLINE = ('[cluster]\nname = "prod"\n\n[[nodes]]\nname = "n1"\nssh_host = "127.0.0.2"\nssh_port = 1\n'
           'certs_dir = "/var/lib/cockroach/certs"\n')


async def test_the_collector_waits_for_the_first_frame_then_runs_again(tmp_path, monkeypatch):
    from tui.screens.home import HomeScreen

    state = tmp_path / "certrotate.toml"
    state.write_text(OFFLINE)
    seen = []
    compose = HomeScreen.compose

    def composing(screen):
        seen.append(gc.isenabled())  # the overview composed, between the app's load and its first frame
        return compose(screen)

    monkeypatch.setattr(HomeScreen, "compose", composing)
    assert gc.isenabled()
    async with CertRotateApp(state).run_test(size=SIZE) as pilot:
        await home_ready(pilot)
        assert seen == [False]
        assert gc.isenabled()
    assert gc.isenabled()


def test_a_wizard_that_cannot_open_leaves_the_collector_on(tmp_path, capsys):
    state = tmp_path / "certrotate.toml"
    state.write_text(OFFLINE)
    assert cli.main(["--state", str(state)]) == 2  # no terminal under pytest: one sentence, exit 2
    assert "needs a terminal" in capsys.readouterr().err
    assert gc.isenabled()
