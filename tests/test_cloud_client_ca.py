"""`certrotate cloud client-ca` / `client-cert`: a Cloud cluster's client CA, rotated through a bundle."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import stat
import subprocess
import time
from pathlib import Path

import psycopg
import pytest
from cryptography import x509

from core import pki
from core.lab.postgres import connect_tls
from core.tools import cloud
from tui.cli import main

KEY = ["--key-type", "ecdsa-p256"]  # fast keys; the RSA path is the one `cert` tests already cover


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["cloud", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def bundle_fingerprints(directory: Path) -> list[str]:
    return [pki.sha256_fingerprint(c) for c in
            x509.load_pem_x509_certificates((directory / cloud.CLIENT_CA_BUNDLE).read_bytes())]


def newest_fingerprint(directory: Path) -> str:
    return bundle_fingerprints(directory)[0]


def openssl_verifies(bundle: Path, cert: Path) -> bool:
    """What a TLS server with `bundle` as its client CA file decides about `cert` (purpose: TLS client)."""
    result = subprocess.run(["openssl", "verify", "-CAfile", str(bundle), "-purpose", "sslclient", str(cert)],
                            capture_output=True, text=True)
    return result.returncode == 0


def snapshot(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


@pytest.fixture
def transition(tmp_path, capsys):
    """A client CA, a client cert from it (old/), a second client CA and a client cert from that (new/)."""
    ca_dir = tmp_path / "client-ca"
    assert run(capsys, "client-ca", "--dir", str(ca_dir), *KEY)[0] == 0
    old_ca = newest_fingerprint(ca_dir)
    assert run(capsys, "client-cert", "--dir", str(ca_dir), "--user", "app", "--certs-dir", str(tmp_path / "old"), *KEY)[0] == 0
    assert run(capsys, "client-ca", "--dir", str(ca_dir), *KEY)[0] == 0
    new_ca = newest_fingerprint(ca_dir)
    assert run(capsys, "client-cert", "--dir", str(ca_dir), "--user", "app", "--certs-dir", str(tmp_path / "new"), *KEY)[0] == 0
    return ca_dir, old_ca, new_ca


def test_first_client_ca_is_a_bundle_of_one_with_its_key_0600(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COCKROACH_API_KEY", "CCDB1_not-a-real-key")
    ca_dir = tmp_path / "client-ca"
    code, out, err = run(capsys, "client-ca", "--dir", str(ca_dir), "--cluster-id", "8e7c2f1a-0000-4bcd", *KEY)
    assert code == 0 and err == ""
    [fingerprint] = bundle_fingerprints(ca_dir)
    key = ca_dir / "client-ca" / f"{fingerprint[:16]}.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE(key.parent.stat().st_mode) == 0o700
    ca = x509.load_pem_x509_certificate((ca_dir / "client-ca" / f"{fingerprint[:16]}.crt").read_bytes())
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert "--request POST --url https://cockroachlabs.cloud/api/v1/clusters/8e7c2f1a-0000-4bcd/client-ca-cert" in out
    assert 'Authorization: Bearer $COCKROACH_API_KEY' in out
    assert "not-a-real-key" not in out and "PRIVATE KEY" not in out


def test_second_client_ca_puts_the_new_one_first_and_keeps_the_old(transition):
    ca_dir, old_ca, new_ca = transition
    assert bundle_fingerprints(ca_dir) == [new_ca, old_ca]
    assert new_ca != old_ca


def test_clients_of_both_cas_verify_during_the_transition_and_only_the_new_after_retire(transition, tmp_path, capsys):
    ca_dir, old_ca, _ = transition
    bundle = ca_dir / cloud.CLIENT_CA_BUNDLE
    old_cert, new_cert = tmp_path / "old" / "client.app.crt", tmp_path / "new" / "client.app.crt"
    assert openssl_verifies(bundle, old_cert) and openssl_verifies(bundle, new_cert)

    code, out, _ = run(capsys, "client-ca", "--dir", str(ca_dir), "--retire", old_ca[:12])
    assert code == 0
    assert f"Removed client CA {old_ca[:16]}" in out and "--request PATCH" in out
    assert bundle_fingerprints(ca_dir) == [newest_fingerprint(ca_dir)] and old_ca not in bundle_fingerprints(ca_dir)
    assert not (ca_dir / "client-ca" / f"{old_ca[:16]}.key").exists()  # a retired CA never signs again
    assert openssl_verifies(bundle, new_cert)
    assert not openssl_verifies(bundle, old_cert)


def test_client_cert_is_signed_by_the_newest_ca_with_its_key_0600(transition, tmp_path):
    ca_dir, old_ca, new_ca = transition
    cert = x509.load_pem_x509_certificate((tmp_path / "new" / "client.app.crt").read_bytes())
    new_ca_cert = x509.load_pem_x509_certificate((ca_dir / "client-ca" / f"{new_ca[:16]}.crt").read_bytes())
    cert.verify_directly_issued_by(new_ca_cert)
    assert pki.common_name(cert) == "app"
    assert stat.S_IMODE((tmp_path / "new" / "client.app.key").stat().st_mode) == 0o600


def test_an_expired_client_ca_is_left_out_of_the_next_bundle_and_dropped_on_request(tmp_path, capsys):
    ca_dir = tmp_path / "client-ca"
    long_ago = pki.utcnow() - dt.timedelta(days=30)
    expired = cloud.new_client_ca(cloud.read_client_ca_dir(ca_dir), key_type="ecdsa-p256",
                                  lifetime=dt.timedelta(days=2), now=long_ago)
    cloud.save_change(ca_dir, expired.writes)
    valid = cloud.new_client_ca(cloud.read_client_ca_dir(ca_dir), key_type="ecdsa-p256",
                                lifetime=dt.timedelta(days=365), now=pki.utcnow())
    # written by hand as a bundle of valid + expired (a new CA would already leave the expired one out)
    cloud.save_change(ca_dir, valid.writes[:2])
    (ca_dir / cloud.CLIENT_CA_BUNDLE).write_bytes(valid.created.entry.pem + expired.created.entry.pem)

    code, out, _ = run(capsys, "client-ca", "--dir", str(ca_dir), "--drop-expired")
    assert code == 0 and f"Removed client CA {expired.created.short}" in out
    assert bundle_fingerprints(ca_dir) == [valid.created.fingerprint]

    (ca_dir / cloud.CLIENT_CA_BUNDLE).write_bytes(valid.created.entry.pem + expired.created.entry.pem)
    code, out, _ = run(capsys, "client-ca", "--dir", str(ca_dir), *KEY)
    assert code == 0 and f"Left out the expired client CA {expired.created.short}" in out
    assert bundle_fingerprints(ca_dir)[1:] == [valid.created.fingerprint]


@pytest.mark.parametrize("args, words", [
    (["client-ca", "--retire", "zz"], "is not a SHA-256 fingerprint"),
    (["client-ca", "--retire", "0000000000"], "has a fingerprint starting with 0000000000"),
    (["client-ca", "--retire", "NEWEST"], "is the newest client CA"),
    (["client-ca", "--cluster-id", "a b"], "is not a CockroachDB Cloud cluster ID"),
    (["client-ca", "--lifetime", "5x"], "is not a duration"),
    (["client-ca", "--key-type", "rsa-1"], "Unknown key type 'rsa-1'"),
    (["client-cert", "--user", "app"], "already exists; pass --overwrite"),
    (["client-cert", "--user", "bad user"], "User name 'bad user'"),
    (["client-cert", "--user", "x", "--lifetime", "200000h"], "after the CA itself expires"),
])
def test_bad_input_is_one_sentence_exit_2_and_nothing_changes(transition, capsys, args, words):
    ca_dir, _, new_ca = transition
    args = [new_ca[:16] if a == "NEWEST" else a for a in args]
    if args[0] == "client-cert" and "app" in args:
        run(capsys, "client-cert", "--dir", str(ca_dir), "--user", "app", *KEY)  # client.app.* now in --dir
    before = snapshot(ca_dir)
    code, out, err = run(capsys, args[0], "--dir", str(ca_dir), *args[1:])
    assert code == 2
    assert words in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert out == ""
    assert snapshot(ca_dir) == before


def test_client_cert_without_a_client_ca_names_the_command_to_run(tmp_path, capsys):
    code, _, err = run(capsys, "client-cert", "--dir", str(tmp_path / "none"), "--user", "app")
    assert code == 2 and "create a client CA first (certrotate cloud client-ca --dir" in err
    assert not (tmp_path / "none").exists()


@pytest.mark.skipif(shutil.which("jq") is None, reason="the printed command uses jq")
def test_printed_upload_command_sends_the_bundle_as_json_with_the_key_from_the_environment(transition, tmp_path, capsys):
    """Run the printed command with a stand-in `curl` that records what it was given."""
    ca_dir, _, _ = transition
    code, out, _ = run(capsys, "client-cert", "--dir", str(ca_dir), "--user", "lb", "--cluster-id", "abc-123", *KEY)
    assert code == 0
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("jq "))
    command = "\n".join(lines[start:start + 4])
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "curl").write_text('#!/bin/sh\nprintf "%s\\n" "$@" > "$RECORD.args"\ncat > "$RECORD.body"\n')
    (bin_dir / "curl").chmod(0o755)
    record = tmp_path / "curl"
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "RECORD": str(record),
           "COCKROACH_API_KEY": "CCDB1_from_env"}
    subprocess.run(["bash", "-euo", "pipefail", "-c", command], check=True, env=env)
    args = (tmp_path / "curl.args").read_text().splitlines()
    assert args[args.index("--request") + 1] == "PATCH"
    assert args[args.index("--url") + 1] == "https://cockroachlabs.cloud/api/v1/clusters/abc-123/client-ca-cert"
    assert "Authorization: Bearer CCDB1_from_env" in args
    body = json.loads((tmp_path / "curl.body").read_text())
    assert body == {"x509_pem_cert": (ca_dir / cloud.CLIENT_CA_BUNDLE).read_text()}


# -- a real server with the bundle as its client CA file -------------------------------------------


def _accepts(lab, node, client_dir: Path) -> bool:
    try:
        with connect_tls(node.address, client_dir, "app", port=node.sql_port,
                         ca_file=lab.local_certs_dir / "ca.crt", timeout=5) as conn:
            return conn.execute("select current_user").fetchone()[0] == "app"
    except psycopg.OperationalError:
        return False


def _settles(check, expected: bool, timeout: float = 15.0) -> bool:
    """A SIGHUP is applied asynchronously: wait until `check()` gives `expected`, or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check() == expected:
            return True
        time.sleep(0.2)
    return False


@pytest.mark.lab
def test_postgres_with_the_transition_bundle_accepts_both_clients_then_only_the_new(lab_factory, transition, tmp_path,
                                                                                    capsys):
    lab = lab_factory(1)
    node = lab.nodes[0]
    ca_dir, old_ca, _ = transition
    old_client, new_client = tmp_path / "old", tmp_path / "new"
    assert not _accepts(lab, node, new_client)  # the node trusts only the lab's own CA so far

    node.install_files({"ca.crt": (ca_dir / cloud.CLIENT_CA_BUNDLE).read_bytes()})
    node.reload()
    assert _settles(lambda: _accepts(lab, node, new_client), True)
    assert _accepts(lab, node, old_client)

    assert run(capsys, "client-ca", "--dir", str(ca_dir), "--retire", old_ca[:16])[0] == 0
    node.install_files({"ca.crt": (ca_dir / cloud.CLIENT_CA_BUNDLE).read_bytes()})
    node.reload()
    assert _settles(lambda: _accepts(lab, node, old_client), False)
    assert _accepts(lab, node, new_client)
