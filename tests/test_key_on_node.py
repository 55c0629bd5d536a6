"""key_on_node = true: every node makes its own new key; only a CSR leaves it, only a certificate goes up."""

import os
import stat

import pytest
from cryptography.hazmat.primitives import serialization

from tests.rotation_support import certrotate, edit_inventory, node_files, served
from tests.signer_support import operator_private_keys, served_public_keys, verify_full_everywhere

pytestmark = pytest.mark.lab


@pytest.fixture
def key_lab(lab):
    edit_inventory(lab, lambda data: data["cluster"].update(key_on_node=True))
    return lab


def test_after_a_node_rotation_each_new_key_exists_only_on_its_node(key_lab):
    lab = key_lab
    before = {node.name: served(lab, node) for node in lab.nodes}
    owners = {node.name: os.stat(node.certs_dir / "node.key").st_uid for node in lab.nodes}
    assert certrotate(lab, "start", "nodes").returncode == 0
    result = certrotate(lab, "advance")
    assert result.returncode == 0, result.stderr + result.stdout
    assert "rotation finished" in result.stdout
    for node in lab.nodes:
        leaf = served(lab, node)
        assert leaf != before[node.name]
        key_file = node.certs_dir / "node.key"
        key = serialization.load_pem_private_key(key_file.read_bytes(), None)
        assert key.public_key() == leaf.public_key()  # the node serves the key it made
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600 and key_file.stat().st_uid == owners[node.name]
        assert not list(node.certs_dir.glob(".certrotate-newkey-*"))
    verify_full_everywhere(lab)
    # Everything on the operator's side: workspace, rotations dir, exports, state file; and the outputs.
    new_keys = set(served_public_keys(lab))
    assert new_keys.isdisjoint(operator_private_keys(lab.operator_dir))
    assert "PRIVATE KEY" not in result.stdout + result.stderr


def test_a_dry_run_says_where_the_key_is_made_and_makes_none(key_lab):
    lab = key_lab
    assert certrotate(lab, "start", "nodes").returncode == 0
    before = node_files(lab)
    result = certrotate(lab, "advance", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "never leaves the node" in result.stdout
    assert node_files(lab) == before
    assert operator_private_keys(lab.operator_dir / "certs" / "rotations") == []
