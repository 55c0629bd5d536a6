"""The pkcs11 signer against a real token (SoftHSM2): the CA key never sits in a file."""

import json

import pytest

from core.lab import softhsm
from tests.rotation_support import FUTURE, certrotate, certs_in, edit_inventory, served
from tests.signer_support import verify_full_everywhere

pytestmark = [pytest.mark.lab, pytest.mark.skipif(not softhsm.available(), reason="needs softhsm2 (make system-deps)")]

PIN = "424242"
TOKEN = "certrotate"


@pytest.fixture
def token_lab(lab, tmp_path):
    """The lab's CA key moved into a SoftHSM2 token, its file gone, the inventory on signer = "pkcs11"."""
    hsm = softhsm.SoftHsm(tmp_path / "hsm")
    hsm.init_token(TOKEN, pin=PIN)
    hsm.import_key(lab.ca_key_path.read_bytes(), token=TOKEN, label="lab-ca", pin=PIN)
    lab.ca_key_path.unlink()

    def use_token(data):
        data["cluster"].update(signer="pkcs11", pkcs11_module=softhsm.MODULE, pkcs11_token=TOKEN,
                               pkcs11_key_label="lab-ca")
    edit_inventory(lab, use_token)
    return lab, hsm


def test_without_the_pin_start_is_one_sentence_and_exit_2(token_lab):
    lab, hsm = token_lab
    result = certrotate(lab, "start", "nodes", env=hsm.env)
    assert result.returncode == 2, result.stderr
    assert "needs its PIN" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    wrong = certrotate(lab, "start", "nodes", env={**hsm.env, "CERTROTATE_PKCS11_PIN": "000000"})
    assert wrong.returncode == 2 and "PIN for token" in wrong.stderr and "wrong" in wrong.stderr


def test_node_rotation_signed_in_the_token_runs_to_idle(token_lab):
    lab, hsm = token_lab
    env = {**hsm.env, "CERTROTATE_PKCS11_PIN": PIN}
    ca = certs_in(lab.local_certs_dir / "ca.crt")[0]
    assert certrotate(lab, "start", "nodes", env=env).returncode == 0
    result = certrotate(lab, "advance", env=env)
    assert result.returncode == 0, result.stderr + result.stdout
    assert "rotation finished" in result.stdout
    for node in lab.nodes:
        served(lab, node).verify_directly_issued_by(ca)
    verify_full_everywhere(lab)


def test_ca_rotation_makes_the_new_ca_inside_the_token(token_lab, tmp_path):
    lab, hsm = token_lab
    pin_file = tmp_path / "pin"
    pin_file.write_text(PIN + "\n")
    flag = ("--pkcs11-pin-file", str(pin_file))
    assert certrotate(lab, "start", "ca", *flag, env=hsm.env).returncode == 0
    trust = certrotate(lab, "advance", *flag, env=hsm.env)
    assert trust.returncode == 0, trust.stderr + trust.stdout
    assert "trusts CA" in trust.stdout  # the throwaway probe certificate was signed inside the token
    rest = certrotate(lab, "advance", "--now", FUTURE, "--yes", *flag, env=hsm.env)
    assert rest.returncode == 0, rest.stderr + rest.stdout
    assert json.loads(certrotate(lab, "status", "--json").stdout)["phase"] == "idle"
    new_ca = certs_in(lab.local_certs_dir / "ca.crt")
    assert len(new_ca) == 1
    for node in lab.nodes:
        served(lab, node).verify_directly_issued_by(new_ca[0])
    verify_full_everywhere(lab, exported=True)
    # No CA key file was written: the new key is in the token only.
    assert not list((lab.operator_dir / "safe").glob("ca*.key"))
    # The next rotation finds the new CA's key in the token by its public key.
    assert certrotate(lab, "start", "nodes", *flag, env=hsm.env).returncode == 0
    again = certrotate(lab, "advance", *flag, env=hsm.env)
    assert again.returncode == 0, again.stderr + again.stdout
    verify_full_everywhere(lab, exported=True)
