"""core.diagnose.cert_info: the facts the wizard's certificate inspector shows, from files and from a node."""

import pytest

from core import pki
from core.diagnose.cert_info import read_certificate_file, served_certificates
from core.errors import BadInput


def test_a_bundle_file_gives_every_certificate_with_its_facts(tmp_path):
    old = pki.issue_ca(common_name="Old CA")
    new = pki.issue_ca(common_name="New CA")
    path = tmp_path / "ca.crt"
    path.write_bytes(new.cert_pem + old.cert_pem)
    infos = read_certificate_file(path)
    assert [i.subject for i in infos] == ["CN=New CA,O=Cockroach", "CN=Old CA,O=Cockroach"]
    assert infos[0].fingerprint == new.fingerprint and infos[0].is_ca and infos[0].self_signed
    assert infos[0].key == "RSA 2048"


def test_a_node_certificate_shows_issuer_and_sans(tmp_path):
    ca = pki.issue_ca(common_name="Lab CA")
    node = pki.issue_node(ca, ["10.0.0.1", "n1.example.com"])
    path = tmp_path / "node.crt"
    path.write_bytes(node.cert_pem)
    [info] = read_certificate_file(path)
    assert info.issuer == "CN=Lab CA,O=Cockroach" and not info.is_ca
    assert set(info.sans) == {"10.0.0.1", "n1.example.com"}
    assert info.not_before < info.not_after


def test_a_key_file_is_refused_without_showing_it(tmp_path):
    ca = pki.issue_ca(common_name="Lab CA")
    path = tmp_path / "ca.key"
    path.write_bytes(ca.key_pem())
    with pytest.raises(BadInput) as error:
        read_certificate_file(path)
    assert "not a certificate" in str(error.value) and "BEGIN" not in str(error.value).replace("PRIVATE KEY", "")


def test_the_served_chain_of_a_lab_node(lab):
    node = lab.nodes[0]
    [leaf, *_] = served_certificates(node.sql_addr)
    assert node.address in leaf.sans
    assert leaf.issuer.startswith("CN=Cockroach CA")
