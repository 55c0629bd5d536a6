"""First-time setup, leaf-only rotations and the cron check, on a real cluster."""

import datetime as dt
import json
import shutil

import pytest

from core import pki
from core.pki import sha256_fingerprint
from tests.rotation_support import certrotate, certs_in, edit_inventory, served

pytestmark = pytest.mark.lab


def fast(data):
    data["cluster"]["verify_timeout_seconds"] = 3


def test_init_on_a_cluster_without_certificates(lab_factory):
    lab = lab_factory(2)
    edit_inventory(lab, fast)
    for node in lab.nodes:
        node.stop_postgres()
        for name in ("ca.crt", "node.crt", "node.key"):
            (node.certs_dir / name).unlink()
    (lab.local_certs_dir / "ca.crt").unlink()
    shutil.move(lab.ca_key_path, lab.ca_key_path.with_name("old.key"))

    assert certrotate(lab, "start", "init").returncode == 0
    first = certrotate(lab, "advance", "--yes")
    assert first.returncode == 1 and "no process to signal" in first.stderr  # the databases are not running yet
    for node in lab.nodes:
        assert sorted(p.name for p in node.certs_dir.iterdir() if p.is_file()) == ["ca.crt", "node.crt", "node.key"]
        node.start_postgres()
    second = certrotate(lab, "advance", "--yes")
    assert second.returncode == 0, second.stderr
    ca = certs_in(lab.local_certs_dir / "ca.crt")
    assert len(ca) == 1 and lab.ca_key_path.exists()
    for node in lab.nodes:
        served(lab, node).verify_directly_issued_by(ca[0])
    export = lab.local_certs_dir / "export" / "root"
    from core.lab.postgres import connect_tls
    with connect_tls(lab.nodes[0].address, export, "root", port=lab.nodes[0].sql_port) as conn:
        assert conn.execute("select current_user").fetchone()[0] == "root"
    assert json.loads(certrotate(lab, "status", "--json").stdout)["phase"] == "idle"


def test_init_refuses_a_cluster_that_has_a_ca(lab):
    result = certrotate(lab, "start", "init")
    assert result.returncode == 2 and "start ca" in result.stderr


def test_node_only_rotation_keeps_the_ca(lab):
    edit_inventory(lab, fast)
    bundle_before = (lab.local_certs_dir / "ca.crt").read_bytes()
    before = {n.name: sha256_fingerprint(served(lab, n)) for n in lab.nodes}
    assert certrotate(lab, "start", "nodes").returncode == 0
    result = certrotate(lab, "advance")
    assert result.returncode == 0, result.stderr
    assert "rotation finished" in result.stdout
    ca = certs_in(lab.local_certs_dir / "ca.crt")[0]
    for node in lab.nodes:
        leaf = served(lab, node)
        assert sha256_fingerprint(leaf) != before[node.name]
        leaf.verify_directly_issued_by(ca)
        assert (node.certs_dir / "ca.crt").read_bytes() == bundle_before


def test_client_only_rotation_waits_for_the_operator_then_finishes(lab):
    assert certrotate(lab, "start", "clients").returncode == 0
    waiting = certrotate(lab, "advance")
    assert waiting.returncode == 0 and "waiting for confirmation" in waiting.stdout
    exported = certs_in(lab.local_certs_dir / "export" / "app" / "client.app.crt")[0]
    assert pki.common_name(exported) == "app"
    done = certrotate(lab, "advance", "--yes")
    assert done.returncode == 0 and "rotation finished" in done.stdout


def test_check_exit_codes(lab, tmp_path):
    ok = certrotate(lab, "check")
    assert ok.returncode == 0, ok.stdout
    warn = certrotate(lab, "check", "--warn-days", "4000", "--crit-days", "1")
    assert warn.returncode == 1 and "WARNING" in warn.stdout and "node n1" in warn.stdout
    lab.node("n2").stop_postgres()
    down = certrotate(lab, "check")
    assert down.returncode == 1 and "n2" in down.stdout
    expired_dir = tmp_path / "certs"
    expired_dir.mkdir()
    old = pki.issue_ca(now=pki.utcnow() - dt.timedelta(days=20), lifetime=dt.timedelta(days=10), key_type="ecdsa-p256")
    (expired_dir / "ca.crt").write_bytes(old.cert_pem)
    crit = certrotate(lab, "check", "--certs-dir", str(expired_dir))
    assert crit.returncode == 2 and "CRITICAL" in crit.stdout and "expired" in crit.stdout
