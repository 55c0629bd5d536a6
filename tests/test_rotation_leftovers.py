"""What a rotation leaves on the operator's machine: a rollback cleans up, a retire archives the old CA key."""

from __future__ import annotations

import json
import stat

import pytest

from core.config import state as state_mod
from tests.rotation_support import FUTURE, certrotate
from tests.tui_helpers import demo_like_lab

pytestmark = pytest.mark.lab


@pytest.fixture
def lab(lab_factory):
    """3 nodes, client `app` over SSH, client `root` delivered by hand (as the demo has them)."""
    return demo_like_lab(lab_factory)


def status(lab):
    return json.loads(certrotate(lab, "status", "--json").stdout)


def by_hand_lines(stdout: str) -> list[str]:
    return [line for line in stdout.splitlines() if "BYHAND" in line]


def test_rollback_removes_the_abandoned_new_ca_and_the_exports_and_says_what_root_needs_back(lab):
    safe = lab.state_path.parent / "safe"
    assert certrotate(lab, "start", "ca").returncode == 0
    rotation_id = status(lab)["rotation_id"]
    new_key = safe / f"ca-{rotation_id}.key"
    staged = lab.local_certs_dir / "rotations" / rotation_id
    assert new_key.exists() and (staged / "ca.crt").exists()  # made at start, before any preview
    trust = certrotate(lab, "advance")
    assert trust.returncode == 0, trust.stderr
    export = lab.local_certs_dir / "export" / "root"
    assert (export / "ca.crt").exists()  # the combined bundle, for the operator to deliver by hand

    result = certrotate(lab, "rollback", "--yes")
    assert result.returncode == 0, result.stderr + result.stdout
    assert not new_key.exists() and not staged.exists() and not export.exists()
    assert (safe / "ca.key").exists()  # the CA in force is untouched
    assert f"safe/ca-{rotation_id}.key" in result.stdout
    [root] = by_hand_lines(result.stdout)
    assert root.startswith("root") and "ca.crt from certs/ca.crt" in root and "give it back its previous files by hand" in root
    assert "Still to do by hand: give root back" in result.stdout
    history = status(lab)["history"][-1]
    assert history["outcome"] == "rolled back" and f"safe/ca-{rotation_id}.key" in history["removed"]


def test_rollback_of_a_client_rotation_names_the_previous_client_files_to_give_back(lab):
    assert certrotate(lab, "start", "clients").returncode == 0
    leaf = certrotate(lab, "advance")
    assert leaf.returncode == 0, leaf.stderr
    export = lab.local_certs_dir / "export" / "root"
    assert (export / "client.root.key").exists()
    previous = (lab.local_certs_dir / "client.root.key").read_bytes()

    result = certrotate(lab, "rollback", "--yes")
    assert result.returncode == 0, result.stderr + result.stdout
    assert not export.exists()
    [root] = by_hand_lines(result.stdout)
    assert "client.root.crt from certs/client.root.crt" in root and "client.root.key from certs/client.root.key" in root
    assert (lab.local_certs_dir / "client.root.key").read_bytes() == previous  # what the line tells to give back
    assert "PRIVATE KEY" not in result.stdout


def test_retire_moves_the_old_ca_key_to_the_archive_and_says_where(lab):
    safe = lab.state_path.parent / "safe"
    old_key = (safe / "ca.key").read_bytes()
    assert certrotate(lab, "start", "ca").returncode == 0
    rotation_id = status(lab)["rotation_id"]
    assert certrotate(lab, "advance").returncode == 0
    done = certrotate(lab, "advance", "--now", FUTURE, "--yes")
    assert done.returncode == 0, done.stderr + done.stdout
    archived = safe / "retired" / "ca.key"
    assert "The old CA key was moved to safe/retired/ca.key" in done.stdout
    assert not (safe / "ca.key").exists() and archived.read_bytes() == old_key
    assert stat.S_IMODE(archived.parent.stat().st_mode) == 0o700 and stat.S_IMODE(archived.stat().st_mode) == 0o600
    state = state_mod.load(lab.state_path)
    assert state.history[-1]["retired_ca_key"] == "safe/retired/ca.key"
    assert state.inventory.cluster.ca_key == f"safe/ca-{rotation_id}.key"
    # the next rotation retires the key in force now, and the archive keeps both
    assert certrotate(lab, "start", "ca").returncode == 0
    assert certrotate(lab, "advance").returncode == 0
    again = certrotate(lab, "advance", "--now", FUTURE, "--yes")
    assert again.returncode == 0, again.stderr + again.stdout
    assert (safe / "retired" / f"ca-{rotation_id}.key").exists() and archived.exists()
