"""A whole CA rotation while five real client stacks keep opening verify-full connections with client
certificates to every node: libpq (psql), psycopg, PgJDBC with the .pk8, node-postgres and Go's crypto/tls.

Each stack reads its files from the client certs dir that the rotation delivers to over SSH
(as an application does on restart, tests/client_stacks.py). Zero failed connections for every
stack in every phase, and each stack connected in each phase.
"""

from __future__ import annotations

import json
import subprocess
import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import pkcs12

from core.pki import sha256_fingerprint
from core.pki.keys import key_matches_certificate
from tests.client_stacks import STACKS, Snapshots, StackRunner, Tally, follow_rotation, missing_toolchains
from tests.rotation_support import FUTURE, certrotate, certs_in, edit_inventory, lab_with_restarting_client

pytestmark = pytest.mark.lab
PASSWORD = "correct horse battery"


@pytest.fixture
def java_client_lab(lab_factory, tmp_path):
    missing = missing_toolchains()
    if missing:
        pytest.skip(f"client stacks need {', '.join(missing)}; `make test` installs them")
    lab, marker = lab_with_restarting_client(lab_factory, 2, clients=("app",))
    (lab.operator_dir / "safe" / "app.p12pass").write_text(PASSWORD + "\n")

    def ask_for_every_format(data):
        data["clients"][0].update(formats=["pem", "pk8", "p12"], p12_password_file="safe/app.p12pass")
    edit_inventory(lab, ask_for_every_format)
    return lab, marker


def _wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_five_client_stacks_keep_connecting_through_a_ca_rotation(java_client_lab, tmp_path):
    lab, marker = java_client_lab
    client_dir = lab.client_host("app").certs_dir
    # A first install of the .pk8 and .p12 (start clients): the Java stack needs its .pk8 from the start.
    assert follow_rotation(["start", "clients", "--state", str(lab.state_path)], Tally())[0] == 0
    code, output = follow_rotation(["advance", "--state", str(lab.state_path)], Tally())
    assert code == 0, output
    assert (client_dir / "client.app.key.pk8").exists() and (client_dir / "client.app.p12").exists()

    tally = Tally()
    snapshots = Snapshots(client_dir, marker)
    snapshots.start()
    runner = StackRunner(snapshots, "app", [node.sql_addr for node in lab.nodes], tally, tmp_path)
    runner.start()
    try:
        _wait_for(lambda: all(tally.ok_in(stack, "before") >= len(lab.nodes) for stack in STACKS), 120,
                  "every stack to connect before the rotation: " + "; ".join(tally.failures[:5]))
        state = ["--state", str(lab.state_path)]
        assert follow_rotation(["start", "ca", *state], tally)[0] == 0
        code, output = follow_rotation(["advance", *state], tally)
        assert code == 0 and "waiting until" in output, output
        with tally.lock:
            tally.phase = "wait"
        _wait_for(lambda: all(tally.ok_in(stack, "wait") >= len(lab.nodes) for stack in STACKS), 60, "wait phase")
        code, output = follow_rotation(["advance", "--now", FUTURE, *state], tally)
        assert code == 0 and "rotation finished" in output, output
        with tally.lock:
            tally.phase = "after"
        _wait_for(lambda: all(tally.ok_in(stack, "after") >= len(lab.nodes) for stack in STACKS), 60,
                  "every stack to connect after the rotation: " + "; ".join(tally.failures[:5]))
    finally:
        runner.stop()
        snapshots.stop()

    assert tally.failures == []
    for stack in STACKS:
        for phase in ("trust", "wait", "leaf", "after"):
            assert tally.ok_in(stack, phase) > 0, (stack, phase, tally.ok)
    assert snapshots.versions >= 4  # start, trust, leaf and retire restarts

    new_ca = certs_in(lab.local_certs_dir / "ca.crt")
    assert len(new_ca) == 1
    new_cert = x509.load_pem_x509_certificate((client_dir / "client.app.crt").read_bytes())
    new_cert.verify_directly_issued_by(new_ca[0])

    # The p12 as a Java keystore and as OpenSSL reads it, with the operator's password.
    listing = subprocess.run(["keytool", "-list", "-keystore", str(client_dir / "client.app.p12"),
                              "-storetype", "PKCS12", "-storepass", PASSWORD], capture_output=True, text=True)
    assert listing.returncode == 0 and "PrivateKeyEntry" in listing.stdout, listing.stdout + listing.stderr
    assert sha256_fingerprint(new_cert).upper()[:8] in listing.stdout.replace(":", "")
    dumped = subprocess.run(["openssl", "pkcs12", "-in", str(client_dir / "client.app.p12"), "-nokeys", "-clcerts",
                             "-passin", f"pass:{PASSWORD}"], capture_output=True)
    assert dumped.returncode == 0 and x509.load_pem_x509_certificate(dumped.stdout[dumped.stdout.index(b"-----BEGIN"):]) == new_cert
    bundle = pkcs12.load_pkcs12((client_dir / "client.app.p12").read_bytes(), PASSWORD.encode())
    assert key_matches_certificate(bundle.key, new_cert.public_key())
    truststore = subprocess.run(["keytool", "-list", "-keystore", str(client_dir / "ca.p12"), "-storetype", "PKCS12",
                                 "-storepass", PASSWORD], capture_output=True, text=True)
    assert truststore.returncode == 0 and truststore.stdout.count("trustedCertEntry") == 1, truststore.stdout

    status = json.loads(certrotate(lab, "status", "--json").stdout)
    proof = status["client_proofs"][f"app@{lab.client_host('app').address}"]
    assert proof["result"] == "proven" and proof["step"] == "retire" and proof["tool"] == "openssl"
