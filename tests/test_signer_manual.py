"""The manual signer: CSRs out, a gate naming what is missing, certificates signed by `openssl ca` as an
organisation would, each checked on arrival, and the rotation completes."""

import subprocess
from pathlib import Path

import pytest

from core.files import write_private, write_public
from tests.rotation_support import certrotate, edit_inventory, served
from tests.signer_support import verify_full_everywhere

pytestmark = pytest.mark.lab

OPENSSL_CA = """
[ ca ]
default_ca = org
[ org ]
dir = {dir}
database = $dir/index.txt
new_certs_dir = $dir/newcerts
serial = $dir/serial
certificate = $dir/ca.crt
private_key = $dir/ca.key
default_md = sha256
default_days = 365
policy = policy_any
copy_extensions = copy
unique_subject = no
email_in_dn = no
[ policy_any ]
organizationName = optional
commonName = supplied
[ node_ext ]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth,clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[ client_ext ]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
"""


class OpensslCA:
    """The organisation's `openssl ca` procedure, with the lab's CA key kept in its own directory."""

    def __init__(self, directory: Path, ca_cert: bytes, ca_key: bytes):
        self.dir = directory
        (directory / "newcerts").mkdir(parents=True)
        (directory / "index.txt").write_text("")
        (directory / "serial").write_text("1000\n")
        write_public(directory / "ca.crt", ca_cert, overwrite=True)
        write_private(directory / "ca.key", ca_key, overwrite=True)
        (directory / "openssl.cnf").write_text(OPENSSL_CA.format(dir=directory))

    def sign(self, csr: Path, extensions: str = "node_ext") -> None:
        subprocess.run(["openssl", "ca", "-batch", "-notext", "-preserveDN", "-config", str(self.dir / "openssl.cnf"),
                        "-extensions", extensions, "-in", str(csr), "-out", str(csr.with_suffix(".crt"))],
                       check=True, capture_output=True, timeout=60)


@pytest.fixture
def manual_lab(lab, tmp_path):
    org = OpensslCA(tmp_path / "org", lab.ca.cert_pem, lab.ca_key_path.read_bytes())
    lab.ca_key_path.unlink()
    edit_inventory(lab, lambda data: data["cluster"].update(signer="manual"))
    return lab, org


def _requests(lab) -> Path:
    (folder,) = (lab.local_certs_dir / "rotations").glob("*/requests")
    return folder


def test_csrs_a_gate_and_openssl_ca_signed_certificates_complete_the_rotation(manual_lab):
    lab, org = manual_lab
    assert certrotate(lab, "start", "nodes").returncode == 0
    before = {node.name: served(lab, node) for node in lab.nodes}
    first = certrotate(lab, "advance")
    assert first.returncode == 0, first.stderr
    assert "waiting for signed certificates" in first.stdout
    for node in lab.nodes:
        assert f"{node.name}.node.crt" in first.stdout
    requests = _requests(lab)
    assert sorted(p.name for p in requests.glob("*.csr")) == [f"{n.name}.node.csr" for n in lab.nodes]
    assert {node.name: served(lab, node) for node in lab.nodes} == before  # nothing changed on a node

    org.sign(requests / "n1.node.csr")
    org.sign(requests / "n2.node.csr")
    second = certrotate(lab, "advance")
    assert second.returncode == 0 and "still missing: n3.node.crt;" in second.stdout, second.stdout

    org.sign(requests / "n3.node.csr")
    done = certrotate(lab, "advance")
    assert done.returncode == 0, done.stderr + done.stdout
    assert "rotation finished" in done.stdout
    for node in lab.nodes:
        leaf = served(lab, node)
        assert leaf != before[node.name]
        leaf.verify_directly_issued_by(lab.ca.certificate)
    verify_full_everywhere(lab)


def test_a_certificate_without_server_auth_is_refused_on_arrival(manual_lab):
    lab, org = manual_lab
    assert certrotate(lab, "start", "nodes").returncode == 0
    assert certrotate(lab, "advance").returncode == 0
    requests = _requests(lab)
    org.sign(requests / "n1.node.csr", extensions="client_ext")
    result = certrotate(lab, "advance")
    assert result.returncode == 2
    assert "n1" in result.stderr and "serverAuth" in result.stderr and "Replace that file" in result.stderr
    assert "Traceback" not in result.stderr


async def test_the_wizard_shows_which_certificates_are_still_missing(manual_lab):
    from tests.tui_helpers import SIZE, home_ready, run_next_step
    from tui.app import CertRotateApp

    lab, org = manual_lab
    assert certrotate(lab, "start", "nodes").returncode == 0
    app = CertRotateApp(lab.state_path)
    async with app.run_test(size=SIZE) as pilot:
        await home_ready(pilot)
        run = await run_next_step(pilot)
        assert not run.error, run.error
        assert "waiting for signed certificates" in run.summary
        assert "n1.node.crt, n2.node.crt, n3.node.crt" in run.summary
        org.sign(_requests(lab) / "n1.node.csr")
        await pilot.press("escape")
        await home_ready(pilot)
        run = await run_next_step(pilot)
        assert "Still missing: n2.node.crt, n3.node.crt" in run.summary
