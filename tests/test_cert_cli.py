"""`certrotate cert` as an operator uses it: same flags and files as `cockroach cert`."""

import hashlib
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import load_der_private_key

from core.pki import bundle
from tui.cli import main


def tree(root: Path) -> dict[str, tuple[str, int]]:
    """Every file under root with its hash and mode: what 'nothing was written' compares."""
    return {
        str(p.relative_to(root)): (hashlib.sha256(p.read_bytes()).hexdigest(), stat.S_IMODE(p.stat().st_mode))
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def cert(*args):
    return main(["cert", *args])


@pytest.fixture
def ws(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cert("create-ca", "--certs-dir=certs", "--ca-key=safe/ca.key", "--key-type=ecdsa-p256") == 0
    return tmp_path


def test_create_ca_writes_cert_and_private_key(ws):
    assert stat.S_IMODE((ws / "safe/ca.key").stat().st_mode) == 0o600
    assert stat.S_IMODE((ws / "certs/ca.crt").stat().st_mode) == 0o644
    assert not (ws / "certs/ca.key").exists()


def test_key_is_0600_even_with_a_permissive_umask(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    old = os.umask(0)
    try:
        assert cert("create-ca", "--certs-dir=c", "--ca-key=k/ca.key", "--key-type=ecdsa-p256") == 0
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "k/ca.key").stat().st_mode) == 0o600


def test_node_and_client_files(ws):
    assert cert("create-node", "localhost", "127.0.0.1", "--certs-dir=certs", "--ca-key=safe/ca.key") == 0
    assert cert("create-client", "root", "--certs-dir=certs", "--ca-key=safe/ca.key", "--also-generate-pkcs8-key") == 0
    for key in ("node.key", "client.root.key", "client.root.key.pk8"):
        assert stat.S_IMODE((ws / "certs" / key).stat().st_mode) == 0o600
    der = (ws / "certs/client.root.key.pk8").read_bytes()
    client = x509.load_pem_x509_certificate((ws / "certs/client.root.crt").read_bytes())
    assert load_der_private_key(der, None).public_key() == client.public_key()


def test_existing_file_without_overwrite_is_refused_and_untouched(ws, capsys):
    before = tree(ws)
    assert cert("create-ca", "--certs-dir=certs", "--ca-key=safe/ca2.key") == 2
    assert "--overwrite" in capsys.readouterr().err
    assert tree(ws) == before


def test_create_ca_overwrite_prepends_the_new_ca_and_keeps_the_old_bytes(ws):
    old_bytes = (ws / "certs/ca.crt").read_bytes()
    assert cert("create-ca", "--certs-dir=certs", "--ca-key=safe/ca2.key", "--overwrite") == 0
    combined = (ws / "certs/ca.crt").read_bytes()
    assert combined.endswith(old_bytes)
    parsed = bundle.parse_bundle(combined, "ca.crt")
    assert len(parsed.entries) == 2
    # create-node signs with the FIRST CA, which is the new one
    assert cert("create-node", "localhost", "--certs-dir=certs", "--ca-key=safe/ca2.key") == 0
    node = x509.load_pem_x509_certificate((ws / "certs/node.crt").read_bytes())
    node.verify_directly_issued_by(parsed.certificates[0])


def test_existing_ca_key_needs_allow_reuse(ws, capsys):
    before = tree(ws)
    assert cert("create-ca", "--certs-dir=certs", "--ca-key=safe/ca.key", "--overwrite") == 2
    assert "--allow-ca-key-reuse" in capsys.readouterr().err
    assert tree(ws) == before
    assert cert("create-ca", "--certs-dir=certs", "--ca-key=safe/ca.key", "--overwrite", "--allow-ca-key-reuse") == 0


def test_wrong_ca_key_is_refused_and_nothing_written(ws, tmp_path, capsys):
    assert cert("create-ca", "--certs-dir=other", "--ca-key=other-safe/ca.key", "--key-type=ecdsa-p256") == 0
    before = tree(ws / "certs")
    assert cert("create-node", "localhost", "--certs-dir=certs", "--ca-key=other-safe/ca.key") == 2
    assert "does not match" in capsys.readouterr().err
    assert tree(ws / "certs") == before


@pytest.mark.parametrize("args,needle", [
    (["create-client", "../../etc/passwd"], "unsafe file name"),
    (["create-client", ".hidden"], "unsafe file name"),
    (["create-node", "localhost", "--lifetime=200000h"], "after the CA itself expires"),
    (["create-node", "localhost", "--lifetime=soon"], "not a duration"),
    (["create-node", "not a host"], "neither an IP address nor a valid DNS name"),
    (["create-node", "localhost", "--key-type=ed25519"], "CockroachDB"),
])
def test_bad_input_is_one_sentence_and_writes_nothing(ws, capsys, args, needle):
    before = tree(ws)
    assert cert(*args, "--certs-dir=certs", "--ca-key=safe/ca.key") == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and "Traceback" not in err and len(err.splitlines()) == 1
    assert tree(ws) == before


def test_garbage_ca_file_is_refused(ws, capsys):
    (ws / "certs/ca.crt").write_bytes(b"-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
    assert cert("create-client", "root", "--certs-dir=certs", "--ca-key=safe/ca.key") == 2
    assert "not a parsable certificate" in capsys.readouterr().err
    assert not (ws / "certs/client.root.key").exists()


def test_client_certificates_come_from_the_client_ca_when_present(ws):
    assert cert("create-client-ca", "--certs-dir=certs", "--ca-key=safe/ca-client.key", "--key-type=ecdsa-p256") == 0
    assert cert("create-client", "root", "--certs-dir=certs", "--ca-key=safe/ca-client.key") == 0
    client_ca = x509.load_pem_x509_certificate((ws / "certs/ca-client.crt").read_bytes())
    x509.load_pem_x509_certificate((ws / "certs/client.root.crt").read_bytes()).verify_directly_issued_by(client_ca)


def test_list_shows_columns_and_flags_problems(ws, capsys):
    cert("create-node", "localhost", "127.0.0.1", "--certs-dir=certs", "--ca-key=safe/ca.key")
    cert("create-client", "root", "--certs-dir=certs", "--ca-key=safe/ca.key", "--lifetime=240h")
    cert("create-client", "app", "--certs-dir=certs", "--ca-key=safe/ca.key")
    capsys.readouterr()
    assert cert("list", "--certs-dir=certs") == 0
    out = capsys.readouterr().out
    header = out.splitlines()[1]
    for column in ("Usage", "Certificate File", "Key File", "Expires", "Notes", "Error"):
        assert column in header
    assert "addresses: localhost,127.0.0.1" in out
    root_line = next(line for line in out.splitlines() if "client.root.crt" in line)
    assert "expires in" in root_line
    os.chmod(ws / "certs/client.app.key", 0o644)
    (ws / "certs/node.key").write_bytes((ws / "certs/client.root.key").read_bytes())
    assert cert("list", "--certs-dir=certs") == 1
    out = capsys.readouterr().out
    assert "has permissions -rw-r--r--, exceeds" in next(line for line in out.splitlines() if "client.app.crt" in line)
    assert "does not match" in next(line for line in out.splitlines() if "node.crt" in line)


def test_console_script_and_python_m_tui_agree(ws):
    for command in (["certrotate"], [sys.executable, "-m", "tui"]):
        exe = Path(sys.executable).parent / "certrotate" if command == ["certrotate"] else None
        argv = [str(exe)] if exe else command
        result = subprocess.run([*argv, "cert", "list", "--certs-dir", "certs"], cwd=ws, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        assert "ca.crt" in result.stdout
