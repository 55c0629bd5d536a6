"""What OpenSSL — the library under libpq and PostgreSQL — says of our files."""

import shutil
import subprocess

import pytest

from core import pki
from core.pki import bundle

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl CLI not installed")


def openssl(*args, input=None):
    return subprocess.run(["openssl", *args], capture_output=True, text=True, input=input, check=False)


@pytest.fixture(scope="module")
def pki_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    ca = pki.issue_ca()
    node = pki.issue_node(ca, ["localhost", "127.0.0.1"])
    client = pki.issue_client(ca, "root")
    for name, data in {"ca.crt": ca.cert_pem, "node.crt": node.cert_pem, "node.key": node.key_pem(), "client.root.crt": client.cert_pem}.items():
        (d / name).write_bytes(data)
    return d


def test_openssl_verifies_node_and_client_with_their_purposes(pki_dir):
    node = openssl("verify", "-CAfile", str(pki_dir / "ca.crt"), "-purpose", "sslserver", str(pki_dir / "node.crt"))
    client = openssl("verify", "-CAfile", str(pki_dir / "ca.crt"), "-purpose", "sslclient", str(pki_dir / "client.root.crt"))
    assert node.returncode == 0, node.stderr
    assert client.returncode == 0, client.stderr


def test_client_certificate_is_not_a_server_certificate(pki_dir):
    result = openssl("verify", "-CAfile", str(pki_dir / "ca.crt"), "-purpose", "sslserver", str(pki_dir / "client.root.crt"))
    assert result.returncode != 0


def test_openssl_reads_the_cockroach_fields(pki_dir):
    text = openssl("x509", "-in", str(pki_dir / "node.crt"), "-noout", "-text").stdout
    assert "Subject: O = Cockroach, CN = node" in text
    assert "DNS:localhost, IP Address:127.0.0.1" in text
    assert "TLS Web Server Authentication, TLS Web Client Authentication" in text
    ca_text = openssl("x509", "-in", str(pki_dir / "ca.crt"), "-noout", "-text").stdout
    assert "CA:TRUE, pathlen:1" in ca_text and "Certificate Sign" in ca_text


def test_openssl_reads_the_rsa_key_as_pkcs1_and_matches_it(pki_dir):
    key_modulus = openssl("rsa", "-in", str(pki_dir / "node.key"), "-noout", "-modulus").stdout
    cert_modulus = openssl("x509", "-in", str(pki_dir / "node.crt"), "-noout", "-modulus").stdout
    assert key_modulus and key_modulus == cert_modulus
    assert (pki_dir / "node.key").read_text().startswith("-----BEGIN RSA PRIVATE KEY-----")


def test_same_named_cas_in_one_bundle_pick_the_right_issuer(tmp_path):
    """During rotation two CAs named 'Cockroach CA' share ca.crt; the AKID makes OpenSSL pick right."""
    old, new = pki.issue_ca(), pki.issue_ca()
    assert old.certificate.subject == new.certificate.subject
    combined = tmp_path / "ca.crt"
    combined.write_bytes(bundle.combine(new.cert_pem, old.cert_pem))
    for issuer in (old, new):
        leaf = tmp_path / "leaf.crt"
        leaf.write_bytes(pki.issue_node(issuer, ["localhost"]).cert_pem)
        result = openssl("verify", "-CAfile", str(combined), str(leaf))
        assert result.returncode == 0, result.stderr
