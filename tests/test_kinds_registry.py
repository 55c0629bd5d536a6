"""The kinds registry is what the engine, `certrotate start` and the start screen offer: one list, read by all."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.config.state import parse_state
from core.errors import BadInput
from core.rotation import engine, kinds
from tests.tui_helpers import SIZE, screen_shown
from tui.app import CertRotateApp
from tui.cli import build_parser

INVENTORY = '[cluster]\nname = "prod"\n{extra}\n[[nodes]]\nname = "n1"\nssh_host = "127.0.0.2"\nssh_port = 1\n' \
            'certs_dir = "/var/lib/cockroach/certs"\n'


def write_state(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "certrotate.toml"
    path.write_text(INVENTORY.format(extra=extra))
    return path


@pytest.mark.parametrize("extra, expected", [
    ("", ["ca", "init", "nodes", "clients", "ui", "recover"]),
    ('client_ca_key = "safe/ca-client.key"\nnode_cert_layout = "split"\n',
     ["ca", "init", "nodes", "clients", "ui", "client-ca", "recover"]),
])
async def test_the_start_screen_offers_exactly_the_registry_for_the_cluster(tmp_path, extra, expected):
    from tui.screens.start import StartScreen

    path = write_state(tmp_path, extra)
    cluster = parse_state(path.read_bytes(), path).inventory.cluster
    assert [kind.name for kind in kinds.offered(cluster)] == expected
    app = CertRotateApp(path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("s")
        screen = await screen_shown(pilot, StartScreen)
        buttons = [button.id.removeprefix("start-") for button in screen.query(".choice")]
        assert buttons == expected
        # Each kind keeps its number, offered or not: recovery is 7 with or without the client CA (6).
        labels = [str(button.label) for button in screen.query(".choice")]
        assert [label.split()[0] for label in labels] == [str(kinds.NAMES.index(name) + 1) for name in expected]
        assert labels[-1].startswith("7  Recover")


def test_every_registered_kind_can_be_started_by_name_and_no_other(tmp_path):
    choices = next(a for a in build_parser()._subparsers._group_actions[0].choices["start"]._actions
                   if a.dest == "kind").choices
    assert tuple(choices) == kinds.NAMES
    state = parse_state(write_state(tmp_path).read_bytes(), tmp_path / "certrotate.toml")
    with pytest.raises(BadInput, match="Unknown rotation 'everything'; choose one of ca, init, nodes, clients, ui, "
                                       "client-ca, recover"):
        engine.start(state, "everything")
    with pytest.raises(BadInput, match="chosen by `certrotate start recover`"):
        engine.start(state, "recover-ca")


def test_only_full_rotations_have_four_phases():
    full = {name for name, kind in kinds.REGISTRY.items() if kind.rotates_ca}
    assert full == {"ca", "client-ca"}
    assert all(kind.phases == ("leaf",) for kind in kinds.REGISTRY.values() if not kind.rotates_ca)
