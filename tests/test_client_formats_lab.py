"""Client key forms and the client-side proof on a real lab, driven through the CLI like an operator would."""

from __future__ import annotations

import json

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from core.pki.keys import key_matches_certificate, load_private_key, private_key_der_pkcs8
from tests.rotation_support import FUTURE, certrotate, edit_inventory

pytestmark = pytest.mark.lab


@pytest.fixture
def app_lab(lab_factory):
    """One node and an `app` client delivered over SSH, without a restart command."""
    return lab_factory(1, clients=("app",), ssh_clients=("app",))


def _cert(path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def _client_key(lab) -> str:
    return f"app@{lab.client_host('app').address}"


def test_a_pk8_already_on_the_client_is_refreshed_without_configuration(app_lab):
    lab = app_lab
    client_dir = lab.client_host("app").certs_dir
    # What `cockroach cert create-client --also-generate-pkcs8-key` leaves beside the PEM key.
    old_key = load_private_key((client_dir / "client.app.key").read_bytes(), "client.app.key")
    (client_dir / "client.app.key.pk8").write_bytes(private_key_der_pkcs8(old_key))

    assert certrotate(lab, "start", "clients").returncode == 0
    result = certrotate(lab, "advance", "--yes")
    assert result.returncode == 0, result.stderr + result.stdout
    assert "client.app.key.pk8 is there too: refreshing it with the new certificate" in result.stdout

    new_cert = _cert(client_dir / "client.app.crt")
    new_cert.verify_directly_issued_by(lab.ca.certificate)
    pk8 = serialization.load_der_private_key((client_dir / "client.app.key.pk8").read_bytes(), None)
    assert key_matches_certificate(pk8, new_cert.public_key())
    assert (client_dir / "client.app.key.pk8").stat().st_mode & 0o077 == 0
    assert not (client_dir / "client.app.p12").exists()  # only what the client had, or asked for


def test_a_p12_on_the_client_without_a_password_file_stops_before_anything_changes(app_lab):
    lab = app_lab
    client_dir = lab.client_host("app").certs_dir
    (client_dir / "client.app.p12").write_bytes(b"an operator's keystore")
    before = {p.name: p.read_bytes() for p in client_dir.iterdir() if p.is_file()}

    assert certrotate(lab, "start", "clients").returncode == 0
    result = certrotate(lab, "advance", "--yes")
    assert result.returncode == 1
    assert "p12_password_file" in result.stderr and "client.app.p12" in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert {p.name: p.read_bytes() for p in client_dir.iterdir() if p.is_file()} == before


def test_p12_format_delivers_a_keystore_and_truststore_that_match_the_new_certificate(app_lab):
    lab = app_lab
    client_dir = lab.client_host("app").certs_dir
    (lab.operator_dir / "safe" / "app.p12pass").write_text("s3cret\n")
    edit_inventory(lab, lambda data: data["clients"][0].update(formats=["pem", "p12"],
                                                               p12_password_file="safe/app.p12pass"))
    assert certrotate(lab, "start", "clients").returncode == 0
    result = certrotate(lab, "advance", "--yes")
    assert result.returncode == 0, result.stderr + result.stdout

    new_cert = _cert(client_dir / "client.app.crt")
    bundle = pkcs12.load_pkcs12((client_dir / "client.app.p12").read_bytes(), b"s3cret")
    assert bundle.cert.certificate == new_cert and key_matches_certificate(bundle.key, new_cert.public_key())
    assert [c.certificate for c in bundle.additional_certs] == [lab.ca.certificate]
    trust = pkcs12.load_pkcs12((client_dir / "ca.p12").read_bytes(), b"s3cret")
    assert [c.certificate for c in trust.additional_certs] == [lab.ca.certificate]
    assert b"s3cret" not in lab.state_path.read_bytes()  # the password is never stored
    assert not (client_dir / "client.app.key.pk8").exists()


def test_proof_from_the_client_host_is_recorded_and_shown(app_lab):
    lab = app_lab
    assert certrotate(lab, "start", "clients").returncode == 0
    result = certrotate(lab, "advance", "--yes")
    assert result.returncode == 0, result.stderr
    assert "proven from the client host: openssl connected to n1 with the delivered files" in result.stdout
    history = json.loads(certrotate(lab, "status", "--json").stdout)
    assert history["client_proofs"][_client_key(lab)]["result"] == "proven"


def test_a_client_host_without_openssl_or_psql_says_could_not_prove_and_retire_asks(app_lab, tmp_path):
    lab = app_lab
    host = lab.client_host("app")
    empty = tmp_path / "bin"
    empty.mkdir()
    host.sshd.stop()
    host.sshd.session_env = {"PATH": str(empty)}  # a minimal host: no openssl, no psql
    host.sshd.start()

    assert certrotate(lab, "start", "ca").returncode == 0
    assert certrotate(lab, "advance").returncode == 0
    leaf = certrotate(lab, "advance", "--now", FUTURE)
    assert leaf.returncode == 0, leaf.stderr + leaf.stdout
    assert "could not prove from the client host: neither openssl nor psql is installed on the client host" in leaf.stdout
    assert "waiting for confirmation: retire the old CA although these clients' new certificates were not proven" \
        in leaf.stdout and _client_key(lab) in leaf.stdout

    status = json.loads(certrotate(lab, "status", "--json").stdout)
    assert status["phase"] == "retire"
    proof = status["client_proofs"][_client_key(lab)]
    assert proof["result"] == "unproven" and proof["step"] == "leaf"
    assert "neither openssl nor psql" in proof["detail"]

    done = certrotate(lab, "advance", "--now", FUTURE, "--yes")
    assert done.returncode == 0 and "rotation finished" in done.stdout, done.stderr + done.stdout
    assert "WARN" in done.stdout and "new certificate not proven from the client host" in done.stdout
