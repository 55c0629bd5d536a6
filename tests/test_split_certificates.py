"""Split node certificates and a split client CA on a real cluster, driven through the CLI.

The lab's PostgreSQL checks client certificates against its ssl_ca_file: with `client_ca=True`
that is ca-client.crt, which is exactly what a CockroachDB node with a client CA does. With
the split layout every node holds client.node.crt and has a role `node` it can log in as.
"""

import json
import shutil
import tempfile
from pathlib import Path

import psycopg
import pytest
from cryptography.x509.oid import ExtendedKeyUsageOID

from core import pki
from core.config import state as state_mod
from core.lab.postgres import connect_tls
from core.pki import sha256_fingerprint
from tests.rotation_support import (
    FUTURE,
    LiveClient,
    certrotate,
    certs_in,
    lab_with_restarting_client,
    node_files,
    rotate_ca_to_idle,
    served,
    set_node_reload,
)

pytestmark = pytest.mark.lab


def connect_as_node(lab, files_of, target) -> str:
    """Log in to `target` as `node` with `files_of`'s client.node.crt, as a node dialing another node would."""
    private = Path(tempfile.mkdtemp(prefix="certrotate-node-client-"))
    try:
        for name in ("client.node.crt", "client.node.key"):
            shutil.copy(files_of.certs_dir / name, private / name)
        (private / "client.node.key").chmod(0o600)
        with connect_tls(target.address, private, "node", port=target.sql_port,
                         ca_file=lab.local_certs_dir / "ca.crt") as conn:
            return conn.execute("select current_user").fetchone()[0]
    finally:
        shutil.rmtree(private, ignore_errors=True)


def eku(certificate) -> list:
    from cryptography import x509
    return list(certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)


def status(lab) -> dict:
    return json.loads(certrotate(lab, "status", "--json").stdout)


def test_split_layout_ca_rotation_rolls_both_node_certificates_without_a_failed_connection(lab_factory):
    lab, marker = lab_with_restarting_client(lab_factory, 3, node_cert_layout="split")
    client_dir = lab.client_host("app").certs_dir
    assert connect_as_node(lab, lab.nodes[0], lab.nodes[1]) == "node"  # the lab's initial split PKI works

    with LiveClient(lab, client_dir, "app", marker) as client:
        assert "rotation finished" in rotate_ca_to_idle(lab)
    assert client.failures == []
    assert client.ok > 30

    new_ca = certs_in(lab.local_certs_dir / "ca.crt")
    assert len(new_ca) == 1
    for node in lab.nodes:
        node_crt = certs_in(node.certs_dir / "node.crt")[0]
        assert pki.common_name(node_crt) is None and eku(node_crt) == [ExtendedKeyUsageOID.SERVER_AUTH]
        assert served(lab, node) == node_crt
        node_crt.verify_directly_issued_by(new_ca[0])
        client_node = certs_in(node.certs_dir / "client.node.crt")[0]
        assert pki.common_name(client_node) == "node"
        client_node.verify_directly_issued_by(new_ca[0])
    assert connect_as_node(lab, lab.nodes[2], lab.nodes[0]) == "node"
    record = status(lab)["history"][-1]
    assert record["outcome"] == "done" and record["kind"] == "ca"


def test_client_ca_rotation_keeps_ca_crt_and_refuses_the_old_client_ca_only_after_retire(lab_factory):
    lab, marker = lab_with_restarting_client(lab_factory, 3, node_cert_layout="split", client_ca=True)
    client_dir = lab.client_host("app").certs_dir
    ca_crt_before = {n.name: (n.certs_dir / "ca.crt").read_bytes() for n in lab.nodes}
    served_before = {n.name: sha256_fingerprint(served(lab, n)) for n in lab.nodes}
    old_client_ca = certs_in(lab.local_certs_dir / "ca-client.crt")[0]
    # The operator's root certificate from before: certrotate refreshes the local copy when the rotation ends.
    old_root = lab.workdir / "old-root"
    old_root.mkdir()
    for name in ("ca.crt", "client.root.crt", "client.root.key"):
        shutil.copy2(lab.local_certs_dir / name, old_root / name)

    with LiveClient(lab, client_dir, "app", marker) as client:
        assert certrotate(lab, "start", "client-ca").returncode == 0
        trust = certrotate(lab, "advance")
        assert trust.returncode == 0, trust.stderr
        assert status(lab)["phase"] == "wait"
        new_fp = sha256_fingerprint(certs_in(lab.local_certs_dir / "ca-client.crt")[0])
        old_fp = sha256_fingerprint(old_client_ca)
        for node in lab.nodes:  # each node was probed with a throwaway certificate of each client CA
            assert f"{node.name:<16} trust    ..     trusts CA {new_fp[:16]}" in trust.stdout
            assert f"{node.name:<16} trust    ..     trusts CA {old_fp[:16]}" in trust.stdout
        for node in lab.nodes:
            bundle = certs_in(node.certs_dir / "ca-client.crt")
            assert len(bundle) == 2 and bundle[1] == old_client_ca
        # During the wait the old client CA is still trusted: the operator's old root certificate logs in.
        with lab.connect_sql(lab.nodes[0], "root") as conn:
            assert conn.execute("select current_user").fetchone()[0] == "root"
        rest = certrotate(lab, "advance", "--now", FUTURE, "--yes")
        assert rest.returncode == 0, rest.stderr + rest.stdout
        assert "rotation finished" in rest.stdout
    assert client.failures == []
    assert client.reloads >= 2  # app got its new certificate and restarted

    new_client_ca = certs_in(lab.local_certs_dir / "ca-client.crt")
    assert len(new_client_ca) == 1 and new_client_ca[0] != old_client_ca
    for node in lab.nodes:
        assert (node.certs_dir / "ca.crt").read_bytes() == ca_crt_before[node.name]
        assert sha256_fingerprint(served(lab, node)) == served_before[node.name]  # node.crt stays
        assert certs_in(node.certs_dir / "ca-client.crt") == new_client_ca
        certs_in(node.certs_dir / "client.node.crt")[0].verify_directly_issued_by(new_client_ca[0])
    certs_in(client_dir / "client.app.crt")[0].verify_directly_issued_by(new_client_ca[0])
    assert connect_as_node(lab, lab.nodes[1], lab.nodes[2]) == "node"
    export = lab.local_certs_dir / "export" / "root"
    with connect_tls(lab.nodes[0].address, export, "root", port=lab.nodes[0].sql_port,
                     ca_file=lab.local_certs_dir / "ca.crt") as conn:
        assert conn.execute("select current_user").fetchone()[0] == "root"
    with pytest.raises(psycopg.OperationalError):  # the old client CA's certificate: refused now
        connect_tls(lab.nodes[0].address, old_root, "root", port=lab.nodes[0].sql_port).close()
    with lab.connect_sql(lab.nodes[0], "root") as conn:  # the refreshed local copy: the new one
        assert conn.execute("select current_user").fetchone()[0] == "root"
    state_text = lab.state_path.read_text()
    assert 'client_ca_key = "safe/ca-client-' in state_text and 'ca_key = "safe/ca.key"' in state_text


def test_rollback_mid_client_ca_rotation_restores_every_node_byte_for_byte(lab_factory):
    lab = lab_factory(3, node_cert_layout="split", client_ca=True)
    lab.ca_key_path.rename(lab.operator_dir / "ca.key.offline")  # a client CA rotation needs no node CA key
    before = node_files(lab)
    local_client_bundle = (lab.local_certs_dir / "ca-client.crt").read_bytes()
    state_before = lab.state_path.read_text()
    assert certrotate(lab, "start", "client-ca").returncode == 0
    assert certrotate(lab, "advance").returncode == 0
    waiting = certrotate(lab, "advance", "--now", FUTURE)  # leaf done; retire waits for the exported clients
    assert waiting.returncode == 0 and "waiting for confirmation" in waiting.stdout, waiting.stdout + waiting.stderr
    assert status(lab)["phase"] == "retire"
    assert node_files(lab)["n1"]["client.node.crt"] != before["n1"]["client.node.crt"]

    result = certrotate(lab, "rollback", "--yes")
    assert result.returncode == 0, result.stderr + result.stdout
    assert node_files(lab) == before
    assert (lab.local_certs_dir / "ca-client.crt").read_bytes() == local_client_bundle
    with lab.connect_sql(lab.nodes[2], "root") as conn:  # the old client CA is trusted again
        assert conn.execute("select 1").fetchone()[0] == 1
    assert connect_as_node(lab, lab.nodes[0], lab.nodes[1]) == "node"
    assert status(lab)["history"][-1]["outcome"] == "rolled back"
    assert 'client_ca_key = "safe/ca-client.key"' in lab.state_path.read_text()
    assert state_before.count("[[nodes]]") == lab.state_path.read_text().count("[[nodes]]")


def test_node_only_rotation_with_split_layout_issues_both_and_restores_both_on_failure(lab_factory):
    lab = lab_factory(2, node_cert_layout="split", client_ca=True)
    before = node_files(lab)
    set_node_reload(lab, "n1", "true")  # the canary keeps serving its old node.crt
    assert certrotate(lab, "start", "nodes").returncode == 0
    failed = certrotate(lab, "advance")
    assert failed.returncode == 1 and "n1" in failed.stderr and "restored" in failed.stderr
    for name in ("node.crt", "node.key", "client.node.crt", "client.node.key"):
        assert node_files(lab)["n1"][name] == before["n1"][name], name
    restored = [e["detail"] for e in state_mod.load(lab.state_path).journal if e["action"] == "leaf restored"]
    assert restored == ["previous client.node.crt, client.node.key, node.crt, node.key back in place"]
    set_node_reload(lab, "n1", lab.node("n1").reload_command)

    done = certrotate(lab, "advance")
    assert done.returncode == 0 and "rotation finished" in done.stdout, done.stderr
    ca = certs_in(lab.local_certs_dir / "ca.crt")[0]
    client_ca = certs_in(lab.local_certs_dir / "ca-client.crt")[0]
    for node in lab.nodes:
        files = node_files(lab)[node.name]
        for name in ("node.crt", "node.key", "client.node.crt", "client.node.key"):
            assert files[name] != before[node.name][name], (node.name, name)
        node_crt = served(lab, node)
        assert pki.common_name(node_crt) is None
        node_crt.verify_directly_issued_by(ca)
        certs_in(node.certs_dir / "client.node.crt")[0].verify_directly_issued_by(client_ca)
        assert files["ca.crt"] == before[node.name]["ca.crt"] and files["ca-client.crt"] == before[node.name]["ca-client.crt"]
    assert connect_as_node(lab, lab.nodes[1], lab.nodes[0]) == "node"


def test_first_install_with_split_layout_and_client_ca_makes_both_cas(lab_factory):
    lab = lab_factory(2, node_cert_layout="split", client_ca=True)
    node_files_made = ["ca-client.crt", "ca.crt", "client.node.crt", "client.node.key", "node.crt", "node.key"]
    for node in lab.nodes:
        node.stop_postgres()
        for name in node_files_made:
            (node.certs_dir / name).unlink()
    for path in (lab.local_certs_dir / "ca.crt", lab.local_certs_dir / "ca-client.crt"):
        path.unlink()
    for key in (lab.ca_key_path, lab.client_ca_key_path):
        shutil.move(key, key.with_name("old-" + key.name))

    assert certrotate(lab, "start", "init").returncode == 0
    first = certrotate(lab, "advance", "--yes")
    assert first.returncode == 1 and "no process to signal" in first.stderr  # the databases are not running yet
    for node in lab.nodes:
        assert sorted(p.name for p in node.certs_dir.iterdir() if p.is_file()) == node_files_made
        node.start_postgres()
    second = certrotate(lab, "advance", "--yes")
    assert second.returncode == 0, second.stderr

    ca = certs_in(lab.local_certs_dir / "ca.crt")
    client_ca = certs_in(lab.local_certs_dir / "ca-client.crt")
    assert len(ca) == 1 and len(client_ca) == 1 and ca != client_ca
    assert lab.ca_key_path.exists() and lab.client_ca_key_path.exists()
    for node in lab.nodes:
        assert pki.common_name(served(lab, node)) is None
        served(lab, node).verify_directly_issued_by(ca[0])
        assert certs_in(node.certs_dir / "ca-client.crt") == client_ca
        certs_in(node.certs_dir / "client.node.crt")[0].verify_directly_issued_by(client_ca[0])
    export = lab.local_certs_dir / "export" / "root"
    certs_in(export / "client.root.crt")[0].verify_directly_issued_by(client_ca[0])
    assert (export / "ca.crt").read_bytes() == (lab.local_certs_dir / "ca.crt").read_bytes()
    with connect_tls(lab.nodes[1].address, export, "root", port=lab.nodes[1].sql_port) as conn:
        assert conn.execute("select current_user").fetchone()[0] == "root"
    assert connect_as_node(lab, lab.nodes[0], lab.nodes[1]) == "node"


def test_start_init_refuses_a_cluster_that_has_a_client_ca(lab_factory):
    lab = lab_factory(1, client_ca=True)
    lab.ca_key_path.unlink()
    (lab.local_certs_dir / "ca.crt").unlink()
    result = certrotate(lab, "start", "init")
    assert result.returncode == 2 and "ca-client.key already exists" in result.stderr


def test_node_ca_rotation_with_a_client_ca_leaves_ca_client_crt_alone(lab_factory):
    lab = lab_factory(2, node_cert_layout="split", client_ca=True)
    client_bundle = {n.name: (n.certs_dir / "ca-client.crt").read_bytes() for n in lab.nodes}
    client_ca = certs_in(lab.local_certs_dir / "ca-client.crt")[0]
    assert certrotate(lab, "start", "ca").returncode == 0
    trust = certrotate(lab, "advance")
    # The nodes check client certificates against ca-client.crt: no throwaway certificate of the new
    # node CA can prove trust there, so trust is shown by the node serving its certificate as before.
    assert trust.returncode == 0, trust.stderr
    assert "trusts CA" not in trust.stdout
    done = certrotate(lab, "advance", "--now", FUTURE, "--yes")
    assert done.returncode == 0 and "rotation finished" in done.stdout, done.stderr + done.stdout
    new_ca = certs_in(lab.local_certs_dir / "ca.crt")
    assert len(new_ca) == 1 and new_ca[0] != lab.ca.certificate
    for node in lab.nodes:
        assert (node.certs_dir / "ca-client.crt").read_bytes() == client_bundle[node.name]
        served(lab, node).verify_directly_issued_by(new_ca[0])
        certs_in(node.certs_dir / "client.node.crt")[0].verify_directly_issued_by(client_ca)
    export = lab.local_certs_dir / "export" / "root"
    certs_in(export / "client.root.crt")[0].verify_directly_issued_by(client_ca)
    with connect_tls(lab.nodes[0].address, export, "root", port=lab.nodes[0].sql_port) as conn:
        assert conn.execute("select current_user").fetchone()[0] == "root"
    assert connect_as_node(lab, lab.nodes[1], lab.nodes[0]) == "node"


def test_lab_with_a_client_ca_checks_client_certificates_against_ca_client_crt(lab_factory):
    from core.remote.probes import probe_trust

    lab = lab_factory(1, node_cert_layout="split", client_ca=True)
    node = lab.nodes[0]
    with lab.connect_sql(node, "root") as conn:  # root's certificate comes from the client CA
        assert conn.execute("select current_user").fetchone()[0] == "root"
    assert probe_trust(node.sql_addr, lab.client_ca).trusted
    assert not probe_trust(node.sql_addr, lab.ca).trusted  # the node CA signs no client the node accepts
    assert pki.common_name(served(lab, node)) is None
    assert 'client_ca_key = "safe/ca-client.key"' in lab.state_path.read_text()
    assert 'node_cert_layout = "split"' in lab.state_path.read_text()
