"""The local signer with an encrypted CA key: rotations need the passphrase, and it is written nowhere."""

import json

import pytest

from core.pki import sha256_fingerprint
from tests.rotation_support import FUTURE, certrotate, certs_in, served
from tests.signer_support import encrypt_ca_key, files_containing, verify_full_everywhere

pytestmark = pytest.mark.lab

PASSPHRASE = b"correct horse battery staple"
ENV = {"CERTROTATE_CA_KEY_PASSPHRASE": PASSPHRASE.decode()}


def _one_sentence(result) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


def test_start_nodes_without_the_passphrase_is_one_sentence_and_exit_2(lab):
    encrypt_ca_key(lab, PASSPHRASE)
    before = lab.state_path.read_bytes()
    result = certrotate(lab, "start", "nodes")
    assert result.returncode == 2
    assert "is encrypted; give its passphrase" in _one_sentence(result)
    assert "CERTROTATE_CA_KEY_PASSPHRASE" in result.stderr
    assert lab.state_path.read_bytes() == before


def test_wrong_passphrase_is_refused_with_exit_2(lab):
    encrypt_ca_key(lab, PASSPHRASE)
    result = certrotate(lab, "start", "nodes", env={"CERTROTATE_CA_KEY_PASSPHRASE": "not it"})
    assert result.returncode == 2
    assert "passphrase for" in _one_sentence(result) and "is wrong" in result.stderr


def test_node_rotation_with_the_passphrase_from_the_environment_runs_to_idle(lab):
    encrypt_ca_key(lab, PASSPHRASE)
    old = {node.name: sha256_fingerprint(served(lab, node)) for node in lab.nodes}
    assert certrotate(lab, "start", "nodes", env=ENV).returncode == 0
    without = certrotate(lab, "advance")
    assert without.returncode == 2 and "encrypted" in _one_sentence(without)
    result = certrotate(lab, "advance", env=ENV)
    assert result.returncode == 0, result.stderr + result.stdout
    assert "rotation finished" in result.stdout
    assert json.loads(certrotate(lab, "status", "--json").stdout)["phase"] == "idle"
    for node in lab.nodes:
        assert sha256_fingerprint(served(lab, node)) != old[node.name]
    verify_full_everywhere(lab)
    outputs = (without.stdout + without.stderr + result.stdout + result.stderr).encode()
    assert PASSPHRASE not in outputs
    assert files_containing(lab.workdir, PASSPHRASE) == []


def test_ca_rotation_with_a_passphrase_file_keeps_the_new_ca_key_encrypted(lab, tmp_path):
    encrypt_ca_key(lab, PASSPHRASE)
    passphrase_file = tmp_path / "passphrase"
    passphrase_file.write_bytes(PASSPHRASE + b"\n")
    flag = ("--ca-key-passphrase-file", str(passphrase_file))
    refused = certrotate(lab, "start", "ca")
    assert refused.returncode == 2 and "encrypted" in _one_sentence(refused)
    assert certrotate(lab, "start", "ca", *flag).returncode == 0
    trust = certrotate(lab, "advance", *flag)
    assert trust.returncode == 0, trust.stderr
    rest = certrotate(lab, "advance", "--now", FUTURE, "--yes", *flag)
    assert rest.returncode == 0, rest.stderr + rest.stdout
    assert "rotation finished" in rest.stdout
    new_ca = certs_in(lab.local_certs_dir / "ca.crt")
    assert len(new_ca) == 1
    for node in lab.nodes:
        served(lab, node).verify_directly_issued_by(new_ca[0])
    verify_full_everywhere(lab, exported=True)
    status = json.loads(certrotate(lab, "status", "--json").stdout)
    new_key = lab.operator_dir / status["history"][-1]["new_ca"]["key"]
    assert b"ENCRYPTED PRIVATE KEY" in new_key.read_bytes()
    assert files_containing(lab.workdir, PASSPHRASE) == []
    assert PASSPHRASE not in (trust.stdout + trust.stderr + rest.stdout + rest.stderr).encode()
