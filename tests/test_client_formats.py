"""Client key forms as values: the files built, the inventory lines that ask for them, the doctor's verdict,
and how a client-side proof is read and recorded."""

from __future__ import annotations

import datetime as dt
import tomllib
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from core import pki
from core.config.inventory import inventory_to_toml_data, parse_inventory
from core.config.state import State
from core.diagnose import doctor
from core.errors import BadInput
from core.pki import client_formats
from core.pki.client_formats import ClientIdentity
from core.pki.keys import key_matches_certificate, private_key_der_pkcs8
from core.rotation import proof_record
from core.rotation.client_proof import proof_script, read_proof

NOW = dt.datetime.now(dt.timezone.utc)


@pytest.fixture(scope="module")
def issued():
    ca = pki.issue_ca(key_type="ecdsa-p256")
    return ca, pki.issue_client(ca, "app", key_type="ecdsa-p256")


def _identity(issued, bundle=True) -> ClientIdentity:
    ca, leaf = issued
    return ClientIdentity("app", leaf.cert_pem, leaf.key_pem(), ca.cert_pem if bundle else None)


def test_every_format_is_built_from_one_key_keys_before_certificates(issued):
    ca, leaf = issued
    files = client_formats.client_files(_identity(issued), ("pem", "pk8", "p12"), b"pw")
    assert list(files) == ["client.app.key", "client.app.key.pk8", "client.app.p12", "ca.crt", "ca.p12",
                           "client.app.crt"]
    assert {name: mode for name, (_, mode) in files.items() if mode == 0o600} == {
        "client.app.key": 0o600, "client.app.key.pk8": 0o600, "client.app.p12": 0o600}
    pk8 = serialization.load_der_private_key(files["client.app.key.pk8"][0], None)
    assert key_matches_certificate(pk8, leaf.certificate.public_key())
    bundle = pkcs12.load_pkcs12(files["client.app.p12"][0], b"pw")
    assert bundle.cert.certificate == leaf.certificate and bundle.cert.friendly_name == b"app"
    assert key_matches_certificate(bundle.key, leaf.certificate.public_key())
    assert [c.certificate for c in bundle.additional_certs] == [ca.certificate]


def test_default_pem_only_is_what_cockroach_writes(issued):
    _, leaf = issued
    files = client_formats.client_files(_identity(issued, bundle=False), ("pem",), None)
    assert files == {"client.app.key": (leaf.key_pem(), 0o600), "client.app.crt": (leaf.cert_pem, 0o644)}


def test_p12_without_a_password_is_one_sentence(issued):
    with pytest.raises(BadInput, match="p12_password_file"):
        client_formats.client_files(_identity(issued), ("p12",), None)


def test_the_password_appears_in_no_repr(issued):
    identity = _identity(issued)
    assert "PRIVATE" not in repr(identity) and "BEGIN" not in repr(identity)


INVENTORY = """
[cluster]
name = "c"
[[nodes]]
name = "n1"
ssh_host = "127.0.0.1"
certs_dir = "/certs"
[[clients]]
user = "app"
ssh_host = "127.0.0.2"
certs_dir = "/app/certs"
"""


def _parse(extra: str):
    text = INVENTORY + extra
    return parse_inventory(tomllib.loads(text), text, "certrotate.toml")


def test_inventory_reads_formats_and_keeps_the_default_unwritten():
    inventory = _parse('formats = ["pem", "pk8", "p12"]\np12_password_file = "safe/app.pass"\n')
    client = inventory.clients[0]
    assert client.formats == ("pem", "pk8", "p12") and client.p12_password_file == "safe/app.pass"
    assert _parse("").clients[0].formats == ("pem",)
    assert "formats" not in inventory_to_toml_data(_parse("")).get("clients", [{}])[0]
    assert inventory_to_toml_data(inventory)["clients"][0]["formats"] == ["pem", "pk8", "p12"]


@pytest.mark.parametrize("extra, words", [
    ('formats = ["jks"]\n', "clients[0].formats has 'jks'; choose from pem, pk8, p12"),
    ("formats = []\n", "clients[0].formats is empty"),
    ('formats = ["pem", "pem"]\n', "lists a format twice"),
    ('formats = "pem"\n', "must be a list of strings"),
    ('formats = ["pem", "p12"]\n', "clients[0].p12_password_file is missing"),
    ('p12_password_file = "x"\n', "formats has no \"p12\""),
])
def test_bad_formats_are_one_sentence_naming_the_field(extra, words):
    with pytest.raises(BadInput) as caught:
        _parse(extra)
    assert words in str(caught.value) and "line" in str(caught.value)


# -- doctor ------------------------------------------------------------------------------------


def _client_dir(tmp_path: Path, issued) -> Path:
    ca, leaf = issued
    (tmp_path / "ca.crt").write_bytes(ca.cert_pem)
    (tmp_path / "client.app.crt").write_bytes(leaf.cert_pem)
    (tmp_path / "client.app.key").write_bytes(leaf.key_pem())
    (tmp_path / "client.app.key").chmod(0o600)
    return tmp_path


def _by_check(findings, check):
    return [f for f in findings if f.check == check]


def test_doctor_fails_a_stale_pk8_with_cause_and_fix(tmp_path, issued):
    ca, _ = issued
    certs = _client_dir(tmp_path, issued)
    old = pki.issue_client(ca, "app", key_type="ecdsa-p256")
    (certs / "client.app.key.pk8").write_bytes(private_key_der_pkcs8(old.key))
    found = _by_check(doctor.check_client_files(certs, "app", NOW, 30), "client-pk8")
    assert [f.level for f in found] == ["FAIL"]
    assert "does not match client.app.crt" in found[0].message and "decrypt_error" in found[0].message
    assert "openssl pkcs8 -topk8" in found[0].message and '"pk8"' in found[0].message
    assert doctor.exit_code(found) == 2


def test_doctor_passes_a_matching_pk8_and_p12(tmp_path, issued):
    certs = _client_dir(tmp_path, issued)
    for name, (content, _) in client_formats.client_files(_identity(issued), ("pk8", "p12"), b"pw").items():
        (certs / name).write_bytes(content)
    findings = doctor.check_client_files(certs, "app", NOW, 30, b"pw")
    assert [f.level for f in _by_check(findings, "client-pk8") + _by_check(findings, "client-p12")] == ["OK", "OK"]
    without = _by_check(doctor.check_client_files(certs, "app", NOW, 30), "client-p12")
    assert without[0].level == "SKIP" and "--p12-password-file" in without[0].message


def test_doctor_fails_a_p12_holding_the_old_key(tmp_path, issued):
    ca, _ = issued
    certs = _client_dir(tmp_path, issued)
    old = pki.issue_client(ca, "app", key_type="ecdsa-p256")
    stale = ClientIdentity("app", old.cert_pem, old.key_pem(), ca.cert_pem)
    (certs / "client.app.p12").write_bytes(client_formats.p12_bundle(stale, b"pw"))
    found = _by_check(doctor.check_client_files(certs, "app", NOW, 30, b"pw"), "client-p12")
    assert found[0].level == "FAIL" and "does not match client.app.crt" in found[0].message
    assert "p12_password_file" in found[0].message
    wrong = _by_check(doctor.check_client_files(certs, "app", NOW, 30, b"nope"), "client-p12")
    assert wrong[0].level == "FAIL" and "password is wrong" in wrong[0].message and "nope" not in wrong[0].message


# -- client-side proof -------------------------------------------------------------------------


def test_proof_script_verifies_an_address_or_a_name():
    assert "-verify_ip 10.0.0.1" in proof_script("/c", "app", "10.0.0.1:26257", "defaultdb")
    assert "-verify_hostname db.example.com" in proof_script("/c", "app", "db.example.com:26257", "defaultdb")
    assert "-starttls postgres" not in proof_script("/c", "app", "h:1", "x", postgres_preamble=False)


@pytest.mark.parametrize("output, result, words", [
    ("certrotate-proof: openssl 0\nCONNECTION ESTABLISHED\nDONE", "proven", "openssl connected to n1"),
    ("certrotate-proof: openssl 1\nVerification: OK\nerror:0A000418:SSL routines::tlsv1 alert unknown ca",
     "failed", "alert unknown ca"),
    ("certrotate-proof: psql 2\npsql: error: connection to server failed: FATAL: certificate authentication failed",
     "failed", "psql to n1 failed"),
    ("certrotate-proof: none", "unproven", "neither openssl nor psql"),
    ("certrotate-proof: missing client.app.crt", "unproven", "client.app.crt is not on the client host"),
    ("bash: something odd", "unproven", "nothing recognisable"),
])
def test_proof_output_is_read_as_the_operator_would(output, result, words):
    proof = read_proof(output, "n1")
    assert proof.result == result and words in proof.detail


def _state(records: dict, phase: str = "retire") -> State:
    inventory = _parse("")
    return State(path=Path("/x/certrotate.toml"), inventory=inventory,
                 rotation={"id": "r", "kind": "ca", "phase": phase, "clients": records})


def test_retire_asks_for_unproven_ssh_clients_only_after_deliveries_are_confirmed():
    key = "app@127.0.0.2"
    unproven = {key: {"leaf": "done", "leaf_confirmed": True, "proof": "unproven", "proof_step": "leaf"}}
    assert proof_record.unproven_clients(_state(unproven)) == [key]
    assert proof_record.retire_confirm_key(_state(unproven)) == proof_record.WAIVER_KEY
    proven = {key: {"leaf": "done", "leaf_confirmed": True, "proof": "proven", "proof_step": "leaf"}}
    assert proof_record.unproven_clients(_state(proven)) == []
    trust_only = {key: {"leaf": "done", "leaf_confirmed": True, "proof": "proven", "proof_step": "trust"}}
    assert proof_record.unproven_clients(_state(trust_only)) == [key]  # proven with the old certificate only
    waived = {key: {**unproven[key], proof_record.WAIVER_KEY: True}}
    assert proof_record.unproven_clients(_state(waived)) == []
    undelivered = {key: {"leaf": "done", "proof": "unproven", "proof_step": "leaf"}}
    assert proof_record.retire_confirm_key(_state(undelivered)) == "leaf_confirmed"


def test_view_and_engine_agree_on_the_retire_confirmation():
    from core.rotation import engine
    from tui import view

    key = "app@127.0.0.2"
    state = _state({key: {"leaf": "done", "leaf_confirmed": True, "proof": "failed", "proof_step": "leaf"}})
    assert view.current_confirm_key(state) == engine.current_confirm_key(state) == proof_record.WAIVER_KEY
    step = view.next_step(state, NOW)
    assert step.kind == "confirm" and step.items == (key,) and "client-side proof" in step.title
    row = [host for host in view.recorded_hosts(state) if host.key == key][0]
    assert "proof FAILED (leaf)" in row.steps
