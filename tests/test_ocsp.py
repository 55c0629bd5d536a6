"""OCSP: `ocsp_url` in [cluster] and `cert create-node/create-client --ocsp-url` put the
responder into the certificate's Authority Information Access, as OpenSSL shows it."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from core import pki
from core.config.inventory import ClusterConfig, NodeConfig, parse_inventory
from core.config.workspace import Workspace, ensure_client_leaf, ensure_node_leaf
from core.errors import BadInput
from tui.cli import main

OCSP = "http://ocsp.example.test:8888/"


def _openssl_text(pem: bytes) -> str:
    return subprocess.run(["openssl", "x509", "-noout", "-text"], input=pem, capture_output=True, check=True).stdout.decode()


@pytest.fixture
def certs(tmp_path: Path) -> tuple[Path, Path]:
    certs_dir, ca_key = tmp_path / "certs", tmp_path / "safe" / "ca.key"
    assert main(["cert", "create-ca", "--certs-dir", str(certs_dir), "--ca-key", str(ca_key)]) == 0
    return certs_dir, ca_key


def test_create_node_with_ocsp_url_writes_the_aia_ocsp_uri(certs):
    certs_dir, ca_key = certs
    assert main(["cert", "create-node", "--certs-dir", str(certs_dir), "--ca-key", str(ca_key), "--ocsp-url", OCSP,
                 "127.0.0.1", "localhost"]) == 0
    assert f"OCSP - URI:{OCSP}" in _openssl_text((certs_dir / "node.crt").read_bytes())


def test_create_client_with_ocsp_url_writes_the_aia_ocsp_uri(certs):
    certs_dir, ca_key = certs
    assert main(["cert", "create-client", "--certs-dir", str(certs_dir), "--ca-key", str(ca_key), "--ocsp-url", OCSP,
                 "app"]) == 0
    assert f"OCSP - URI:{OCSP}" in _openssl_text((certs_dir / "client.app.crt").read_bytes())


def test_without_ocsp_url_no_aia_is_written(certs):
    certs_dir, ca_key = certs
    assert main(["cert", "create-client", "--certs-dir", str(certs_dir), "--ca-key", str(ca_key), "app"]) == 0
    assert "OCSP - URI:" not in _openssl_text((certs_dir / "client.app.crt").read_bytes())


def test_create_node_refuses_an_ocsp_url_that_is_not_http(certs, capsys):
    certs_dir, ca_key = certs
    code = main(["cert", "create-node", "--certs-dir", str(certs_dir), "--ca-key", str(ca_key),
                 "--ocsp-url", "ftp://ocsp.example.test/", "localhost"])
    assert code == 2
    assert "is not an http:// or https:// URL" in capsys.readouterr().err
    assert not (certs_dir / "node.crt").exists()


def test_state_file_ocsp_url_must_be_an_http_url():
    text = '[cluster]\nname = "prod"\nocsp_url = "ocsp.example.test"\n\n[[nodes]]\nname = "n1"\nssh_host = "127.0.0.1"\ncerts_dir = "/certs"\n'
    import tomllib

    with pytest.raises(BadInput, match=r"line 3: cluster\.ocsp_url .*not an http:// or https:// URL"):
        parse_inventory(tomllib.loads(text), text, "certrotate.toml")


def test_rotation_leaves_carry_the_cluster_ocsp_url(tmp_path):
    ws = Workspace(tmp_path, ClusterConfig(name="prod", ocsp_url=OCSP))
    ca = pki.issue_ca()
    node = NodeConfig(ssh_host="127.0.0.1", name="n1", certs_dir="/certs", addresses=("127.0.0.1",))
    node_leaf = ensure_node_leaf(ws, "r1", ca, node, now=pki.utcnow())
    client_leaf = ensure_client_leaf(ws, "r1", ca, "app", now=pki.utcnow())
    assert f"OCSP - URI:{OCSP}" in _openssl_text(node_leaf.cert_pem)
    assert f"OCSP - URI:{OCSP}" in _openssl_text(client_leaf.cert_pem)


def test_node_rotation_with_cluster_ocsp_url_serves_a_certificate_naming_the_responder(lab_factory):
    from cryptography import x509

    from tests.rotation_support import certrotate, edit_inventory, served

    lab = lab_factory(1, clients=("root",))
    edit_inventory(lab, lambda data: data["cluster"].update(ocsp_url=OCSP))
    assert certrotate(lab, "start", "nodes").returncode == 0
    result = certrotate(lab, "advance", "--yes")
    assert result.returncode == 0, result.stdout + result.stderr
    aia = served(lab, lab.nodes[0]).extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    assert [d.access_location.value for d in aia] == [OCSP]
