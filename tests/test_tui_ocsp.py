"""The OCSP screen: what security.ocsp.mode off / lax / strict do, shown before a rotation when
`ocsp_url` is set, and from anywhere with `o` or the command palette."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import Button

from tests.tui_helpers import SIZE, home_ready, screen_shown, wait_for
from tui.app import CertRotateApp
from tui.screens.home import HomeScreen
from tui.screens.ocsp import OcspScreen
from tui.screens.start import StartScreen

INVENTORY = """[cluster]
name = "prod"
{ocsp}
[[nodes]]
name = "n1"
ssh_host = "127.0.0.2"
ssh_port = 1
certs_dir = "/var/lib/cockroach/certs"
"""


def state_file(tmp_path: Path, ocsp_url: str | None) -> Path:
    path = tmp_path / "certrotate.toml"
    path.write_text(INVENTORY.format(ocsp=f'ocsp_url = "{ocsp_url}"\n' if ocsp_url else ""))
    return path


def shown_text(screen) -> str:
    return "\n".join(str(widget.render()) for widget in screen.query("Static, Label"))


async def test_with_ocsp_url_strict_mode_is_explained_and_needs_a_way_back_before_the_rotation(tmp_path):
    app = CertRotateApp(state_file(tmp_path, "http://ocsp.example.test/"))
    async with app.run_test(size=SIZE) as pilot:
        await home_ready(pilot)
        await pilot.press("s")
        screen = await screen_shown(pilot, OcspScreen)
        guide = screen.query_one("#ocsp-guide").source
        assert "you are\n  locked out of the cluster" in guide and "**lax**" in guide
        assert "http://ocsp.example.test/" in shown_text(screen)
        assert screen.mode == "lax" and not screen.query_one("#ocsp-continue", Button).disabled

        await pilot.click("#ocsp-strict")
        await pilot.pause()
        assert screen.mode == "strict"
        assert "if it is down, nobody connects" in str(screen.query_one("#ocsp-consequence").render())
        assert "SET CLUSTER SETTING security.ocsp.mode = 'strict';" in str(screen.query_one("#ocsp-consequence").render())
        assert screen.query_one("#ocsp-continue", Button).disabled
        await pilot.press("ctrl+s")  # refused: no way back yet
        await pilot.pause()
        assert app.screen is screen

        await pilot.click("#ocsp-fallback")
        await pilot.pause()
        assert not screen.query_one("#ocsp-continue", Button).disabled
        await pilot.press("ctrl+s")
        await screen_shown(pilot, StartScreen)
        home = app.screen_stack[0]
        assert "security.ocsp.mode = 'strict'" in str(home.query_one("#message").render())
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, HomeScreen), "the home screen")
        assert not app.state.rotation


async def test_cancelling_the_ocsp_screen_starts_nothing(tmp_path):
    app = CertRotateApp(state_file(tmp_path, "http://ocsp.example.test/"))
    async with app.run_test(size=SIZE) as pilot:
        await home_ready(pilot)
        await pilot.press("s")
        await screen_shown(pilot, OcspScreen)
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, HomeScreen), "the home screen")


async def test_without_ocsp_url_start_opens_directly_and_o_explains_the_modes(tmp_path):
    app = CertRotateApp(state_file(tmp_path, None))
    async with app.run_test(size=SIZE) as pilot:
        await home_ready(pilot)
        await pilot.press("s")
        start = await screen_shown(pilot, StartScreen)
        await pilot.press("o")
        screen = await screen_shown(pilot, OcspScreen)
        assert "No ocsp_url in [cluster]" in shown_text(screen)
        assert "Done (ctrl+s)" in str(screen.query_one("#ocsp-continue", Button).label)
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is start, "back on the start screen")


async def test_the_command_palette_opens_the_ocsp_screen(tmp_path):
    app = CertRotateApp(state_file(tmp_path, "http://ocsp.example.test/"))
    async with app.run_test(size=SIZE) as pilot:
        await home_ready(pilot)
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"OCSP modes")
        await pilot.pause(0.5)
        await pilot.press("enter")
        screen = await screen_shown(pilot, OcspScreen)
        await pilot.press("ctrl+s")  # lax: the SQL to run, as a toast
        await wait_for(pilot, lambda: isinstance(app.screen, HomeScreen), "the home screen")
        assert any("security.ocsp.mode = 'lax'" in str(n.message) for n in app._notifications)
        assert screen.before_rotation is False


async def test_on_the_start_dialog_the_command_palette_offers_ocsp_modes(tmp_path):
    app = CertRotateApp(state_file(tmp_path, None))
    async with app.run_test(size=SIZE) as pilot:
        await home_ready(pilot)
        await pilot.press("s")
        start = await screen_shown(pilot, StartScreen)
        titles = [command.title for command in app.get_system_commands(start)]
        assert "CA rotation" in titles and titles.count("OCSP modes") == 1
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"OCSP modes")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await screen_shown(pilot, OcspScreen)
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is start, "back on the start screen")
