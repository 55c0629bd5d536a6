"""Files from `certrotate cert` on real software: a PostgreSQL server and psycopg clients.

This is the rotation's whole premise, shown end to end: while the server trusts the
combined bundle, clients of either CA connect; a client that only knows the old CA is
refused once the node serves a certificate of the new CA.
"""

import shutil
import socket
import tempfile
from pathlib import Path

import psycopg
import pytest
from cryptography import x509

from core.lab.postgres import PostgresServer, connect_tls, default_run_as
from core.pki import sha256_fingerprint
from core.remote.probes import wait_for_fingerprint
from tui.cli import main

pytestmark = pytest.mark.lab

ADDRESS = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((ADDRESS, 0))
        return s.getsockname()[1]


def install(server_certs: Path, operator_certs: Path, run_as) -> None:
    """Copy the node's files as an operator would, owned by the server's account, key 0600."""
    for name in ("ca.crt", "node.crt", "node.key"):
        target = server_certs / name
        shutil.copyfile(operator_certs / name, target)
        target.chmod(0o600 if name.endswith(".key") else 0o644)
        run_as.chown(target)


def cert(*args: str) -> None:
    assert main(["cert", *args]) == 0


@pytest.fixture
def node(monkeypatch):
    # pytest's own tmp dirs are 0700, which the `postgres` account cannot traverse when we are root
    base = Path(tempfile.mkdtemp(prefix="certrotate-pgtls-"))
    base.chmod(0o755)
    monkeypatch.chdir(base)
    run_as = default_run_as()
    port = free_port()
    cert("create-ca", "--certs-dir=certs", "--ca-key=safe/ca.key")
    cert("create-node", ADDRESS, "localhost", "--certs-dir=certs", "--ca-key=safe/ca.key")
    cert("create-client", "root", "--certs-dir=certs", "--ca-key=safe/ca.key")
    server_certs = base / "server" / "certs"
    server_certs.mkdir(parents=True)
    (base / "server").chmod(0o755)
    run_as.chown(server_certs)
    install(server_certs, base / "certs", run_as)
    server = PostgresServer(base / "server", ADDRESS, port, server_certs, run_as)
    server.start()
    try:
        server.create_roles(["root"])
        yield base, server, server_certs, run_as
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


def select_one(conn) -> int:
    with conn:
        return conn.execute("select 1").fetchone()[0]


def test_generated_files_work_with_verify_full(node):
    base, server, _, _ = node
    assert select_one(connect_tls(ADDRESS, base / "certs", "root", port=server.port)) == 1


def test_rotation_premise_on_real_software(node):
    base, server, server_certs, run_as = node
    old_ca_only = base / "old-ca.crt"
    shutil.copyfile(base / "certs/ca.crt", old_ca_only)
    old_client = base / "old-client"
    old_client.mkdir()
    for name in ("client.root.crt", "client.root.key"):
        shutil.copy2(base / "certs" / name, old_client / name)

    cert("create-ca", "--certs-dir=certs", "--ca-key=safe/ca2.key", "--overwrite")
    cert("create-node", ADDRESS, "localhost", "--certs-dir=certs", "--ca-key=safe/ca2.key", "--overwrite")
    cert("create-client", "root", "--certs-dir=certs", "--ca-key=safe/ca2.key", "--overwrite")
    install(server_certs, base / "certs", run_as)
    server.reload()
    new_node = x509.load_pem_x509_certificate((base / "certs/node.crt").read_bytes())
    assert wait_for_fingerprint(server.sql_addr, sha256_fingerprint(new_node), timeout=10) == sha256_fingerprint(new_node)

    # combined bundle + new client certificate
    assert select_one(connect_tls(ADDRESS, base / "certs", "root", port=server.port)) == 1
    # a client still holding its OLD certificate is accepted: the server trusts both CAs
    old_client_conn = connect_tls(ADDRESS, old_client, "root", port=server.port, ca_file=base / "certs/ca.crt")
    assert select_one(old_client_conn) == 1
    # a client that only knows the old CA cannot verify the new node certificate
    with pytest.raises(psycopg.OperationalError, match="certificate verify failed"):
        connect_tls(ADDRESS, base / "certs", "root", port=server.port, ca_file=old_ca_only)
