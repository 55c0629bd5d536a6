"""key_on_node = true: every node makes its own new key; only a CSR leaves it, only a certificate goes up."""

import os
import stat

import pytest
from cryptography import x509
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
    assert "it never leaves the host" in result.stdout
    assert node_files(lab) == before
    assert operator_private_keys(lab.operator_dir / "certs" / "rotations") == []


def test_a_client_with_key_on_host_gets_a_certificate_for_the_key_its_host_made(lab_factory):
    from core.lab.postgres import connect_tls

    lab = lab_factory(2, ssh_clients=("app",))

    def key_on_host(data):
        for client in data["clients"]:
            if client["user"] == "app":
                client["key_on_host"] = True
    edit_inventory(lab, key_on_host)
    host = lab.client_host("app")
    old_cert = (host.certs_dir / "client.app.crt").read_bytes()
    assert certrotate(lab, "start", "clients").returncode == 0
    result = certrotate(lab, "advance", "--yes")
    assert result.returncode == 0, result.stderr + result.stdout
    assert "rotation finished" in result.stdout
    cert = x509.load_pem_x509_certificate((host.certs_dir / "client.app.crt").read_bytes())
    assert cert.public_bytes(serialization.Encoding.PEM) != old_cert
    key = serialization.load_pem_private_key((host.certs_dir / "client.app.key").read_bytes(), None)
    assert key.public_key() == cert.public_key()
    assert stat.S_IMODE((host.certs_dir / "client.app.key").stat().st_mode) == 0o600
    for node in lab.nodes:
        with connect_tls(node.address, host.certs_dir, "app", port=node.sql_port) as conn:
            assert conn.execute("select 1").fetchone() == (1,)
    public = cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert public not in operator_private_keys(lab.operator_dir)


def test_a_node_without_openssl_is_named_in_one_sentence_and_keeps_its_files(key_lab, tmp_path):
    lab = key_lab
    empty = tmp_path / "bin"
    empty.mkdir()
    canary = lab.nodes[0]
    canary.sshd.stop()
    canary.sshd.session_env = {"PATH": str(empty)}  # a minimal host: no openssl
    canary.sshd.start()
    before = node_files(lab)
    assert certrotate(lab, "start", "nodes").returncode == 0
    result = certrotate(lab, "advance")
    assert result.returncode == 1
    assert f"{canary.name} has no openssl" in result.stderr and "key_on_node = false" in result.stderr
    assert "Traceback" not in result.stderr
    assert node_files(lab) == before
