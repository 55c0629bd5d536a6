"""The cfssl signer: the organisation's CA is a real CFSSL server on loopback; certrotate sends CSRs."""

import json

import pytest

from core import pki
from core.files import write_private, write_public
from core.lab import cfssl_server
from tests.rotation_support import FUTURE, certrotate, certs_in, edit_inventory, served
from tests.signer_support import verify_full_everywhere

pytestmark = [pytest.mark.lab, pytest.mark.skipif(not cfssl_server.available(), reason="needs golang-cfssl")]


@pytest.fixture
def cfssl_lab(lab, tmp_path):
    """The lab's CA handed to the organisation's CFSSL server; no CA key left on the operator's side."""
    server = cfssl_server.CfsslServer(tmp_path / "org-ca", f"{lab.block}250", 8888, lab.ca)
    server.start()
    lab.ca_key_path.unlink()
    write_private(lab.operator_dir / "safe" / "cfssl.hex", server.auth_key_hex.encode() + b"\n", overwrite=True)

    def use_cfssl(data):
        data["cluster"].update(signer="cfssl", cfssl_url=server.url, cfssl_auth_key_file="safe/cfssl.hex")
    edit_inventory(lab, use_cfssl)
    yield lab, server
    server.stop()


def test_node_rotation_signed_by_the_cfssl_server_runs_to_idle(cfssl_lab):
    lab, _ = cfssl_lab
    assert certrotate(lab, "start", "nodes").returncode == 0
    result = certrotate(lab, "advance")
    assert result.returncode == 0, result.stderr + result.stdout
    assert "rotation finished" in result.stdout
    for node in lab.nodes:
        leaf = served(lab, node)
        leaf.verify_directly_issued_by(lab.ca.certificate)
        assert pki.common_name(leaf) == "node" and node.address in pki.san_strings(leaf)
    verify_full_everywhere(lab)


def test_a_wrong_auth_key_is_refused_by_the_server_in_one_sentence(cfssl_lab):
    lab, _ = cfssl_lab
    write_private(lab.operator_dir / "safe" / "cfssl.hex", b"00" * 16, overwrite=True)
    assert certrotate(lab, "start", "nodes").returncode == 0
    result = certrotate(lab, "advance")
    assert result.returncode == 1
    assert "refused the request" in result.stderr and "Traceback" not in result.stderr


def test_ca_rotation_with_the_organisations_new_ca(cfssl_lab, tmp_path):
    lab, server = cfssl_lab
    refused = certrotate(lab, "start", "ca")
    assert refused.returncode == 2 and "--new-ca" in refused.stderr
    org_new_ca = pki.issue_ca(key_type="ecdsa-p256", common_name="Example Org CA 2")
    new_ca_file = tmp_path / "org-ca-2.crt"
    write_public(new_ca_file, org_new_ca.cert_pem, overwrite=True)
    assert certrotate(lab, "start", "ca", "--new-ca", str(new_ca_file)).returncode == 0
    trust = certrotate(lab, "advance")
    assert trust.returncode == 0, trust.stderr + trust.stdout
    # The server still signs with the old CA: the leaf step stops before any node changes.
    early = certrotate(lab, "advance", "--now", FUTURE, "--yes")
    assert early.returncode == 1
    assert "signs with CA" in early.stderr and "switch the server" in early.stderr
    server.switch_ca(org_new_ca)
    rest = certrotate(lab, "advance", "--now", FUTURE, "--yes")
    assert rest.returncode == 0, rest.stderr + rest.stdout
    assert json.loads(certrotate(lab, "status", "--json").stdout)["phase"] == "idle"
    assert [c.fingerprint(c.signature_hash_algorithm) for c in certs_in(lab.local_certs_dir / "ca.crt")] == \
        [org_new_ca.certificate.fingerprint(org_new_ca.certificate.signature_hash_algorithm)]
    for node in lab.nodes:
        served(lab, node).verify_directly_issued_by(org_new_ca.certificate)
    verify_full_everywhere(lab, exported=True)
