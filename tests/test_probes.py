"""The network probes: what a node serves, and which CA it trusts.

Lab tests run a real PostgreSQL 15 doing TLS from a cockroach-style certs dir
(core.lab.postgres); the rest use small Python servers on 127.0.0.1 for what a
PostgreSQL cannot easily be made to do (TLS 1.2 only, no client certificates,
silence, 'N' to the SSLRequest).
"""

from __future__ import annotations

import contextlib
import os
import socket
import ssl
import stat
import struct
import threading
import time
from types import SimpleNamespace

import pytest
from cryptography import x509

from core import pki
from core.errors import BadInput, CertRotateError
from core.remote.probes import (
    SSL_REQUEST,
    make_probe_client,
    probe_http,
    probe_served_certificate,
    probe_sql,
    probe_trust,
    split_address,
    wait_for_fingerprint,
)

FAST = "ecdsa-p256"


@pytest.fixture(scope="module")
def ca() -> pki.Issued:
    return pki.issue_ca(key_type=FAST)


@pytest.fixture(scope="module")
def unrelated_ca() -> pki.Issued:
    return pki.issue_ca(key_type=FAST, common_name="Unrelated CA")


def eventually(check, timeout: float = 10.0):
    """Poll `check` until it returns something truthy (PostgreSQL reloads asynchronously)."""
    end = time.monotonic() + timeout
    while True:
        result = check()
        if result or time.monotonic() > end:
            return result
        time.sleep(0.1)


# -- a real PostgreSQL (the shared lab: one node, sshd + PostgreSQL 15 on loopback) -----------


@pytest.fixture
def pg(lab_factory):
    """One lab node and what the tests need of it: its CA, its current node.crt, its SQL address."""
    lab = lab_factory(nodes=1, key_type=FAST)
    node = lab.nodes[0]
    current = x509.load_pem_x509_certificate((node.certs_dir / "node.crt").read_bytes())
    return SimpleNamespace(lab=lab, node=node, addr=node.sql_addr, ca=lab.ca, current=current,
                           fingerprint=pki.sha256_fingerprint(current))


@pytest.mark.lab
def test_sql_probe_returns_the_fingerprint_of_node_crt(pg):
    served = probe_sql(pg.addr)

    assert served.fingerprint == pg.fingerprint
    assert served.leaf == pg.current
    assert served.not_after == pg.current.not_valid_after_utc
    assert "CN=node" in served.subject
    assert set(served.sans) == set(pg.node.addresses)
    # OpenSSL completes the chain from ssl_ca_file when node.crt holds only the leaf.
    assert served.chain == (pg.current, pg.ca.certificate) and served.chain_is_complete
    assert served.tls_version == "TLSv1.3"


@pytest.mark.lab
def test_wait_for_fingerprint_sees_the_new_certificate_after_sighup(pg):
    new_node = pki.issue_node(pg.ca, pg.node.addresses, key_type=FAST)
    pg.node.install_node_cert(new_node)
    pg.node.reload()

    assert wait_for_fingerprint(pg.addr, new_node.fingerprint, timeout=10) == new_node.fingerprint
    assert probe_sql(pg.addr).fingerprint == new_node.fingerprint


@pytest.mark.lab
def test_a_node_given_a_mismatched_pair_keeps_serving_the_old_certificate(pg):
    new_node = pki.issue_node(pg.ca, pg.node.addresses, key_type=FAST)
    pg.node.install_files({"node.crt": new_node.cert_pem})  # new certificate, old key
    pg.node.reload()
    # The reload's exit code says nothing; PostgreSQL logs the refusal and keeps its old context.
    log = pg.node.postgres.log_path
    assert eventually(lambda: "SSL configuration was not reloaded" in log.read_text(errors="replace"))

    seen = wait_for_fingerprint(pg.addr, new_node.fingerprint, timeout=1.5)

    assert seen == pg.fingerprint != new_node.fingerprint
    assert pg.node.postgres.running


@pytest.mark.lab
def test_trust_probe_trusts_the_nodes_ca_and_not_an_unrelated_one(pg, unrelated_ca):
    trusted = probe_trust(pg.addr, pg.ca)
    untrusted = probe_trust(pg.addr, unrelated_ca)

    assert trusted.trusted, trusted.detail
    # hba `cert` authenticates CN=certrotate-probe; that no such role exists only comes later.
    assert trusted.detail.startswith(f"{pg.addr} accepted a client certificate signed by ")
    assert trusted.detail.endswith("then it sent authentication ok.")
    assert not untrusted.trusted
    assert untrusted.detail == f"{pg.addr} rejected a client certificate signed by CN=Unrelated CA,O=Cockroach (unknown CA)."


@pytest.mark.lab
def test_a_combined_bundle_makes_the_node_trust_both_cas_after_reload(pg):
    new_ca = pki.issue_ca(key_type=FAST, common_name="Cockroach CA 2")
    assert not probe_trust(pg.addr, new_ca).trusted

    pg.node.install_files({"ca.crt": new_ca.cert_pem + pg.ca.cert_pem})  # new CA first, as the trust phase builds it
    pg.node.reload()

    assert eventually(lambda: probe_trust(pg.addr, new_ca).trusted)
    assert probe_trust(pg.addr, pg.ca).trusted
    assert probe_sql(pg.addr).fingerprint == pg.fingerprint  # still serving its current certificate


@pytest.mark.lab
def test_one_probe_client_can_be_reused_across_probes(pg):
    client = make_probe_client(pg.ca)

    assert probe_trust(pg.addr, pg.ca, client=client).trusted
    assert probe_trust(pg.addr, pg.ca, client=client).trusted


@pytest.mark.lab
def test_a_stopped_node_is_a_refused_connection(pg):
    pg.node.stop_postgres()
    with pytest.raises(CertRotateError, match=rf"^Connection to {pg.addr} was refused"):
        probe_sql(pg.addr, timeout=2)


# -- small Python servers ---------------------------------------------------------------------


class FakeNode:
    """A TLS server thread on 127.0.0.1, optionally behind a PostgreSQL SSLRequest."""

    def __init__(self, context: ssl.SSLContext | None, *, preamble: bytes | None = b"S", silent: bool = False):
        self.context = context
        self.preamble = preamble
        self.silent = silent
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.05)  # a closed listener does not wake a blocked accept()
        self.addr = f"127.0.0.1:{self.listener.getsockname()[1]}"
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stopping.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                with contextlib.suppress(OSError, ValueError, struct.error):
                    self._handle(conn)

    def _handle(self, conn: socket.socket) -> None:
        if self.silent:
            while conn.recv(100):
                pass
            return
        if self.preamble is not None:
            assert conn.recv(8) == SSL_REQUEST
            conn.sendall(self.preamble)
            if self.preamble != b"S":
                return
        tls = self.context.wrap_socket(conn, server_side=True)
        if self.preamble is not None:
            (length,) = struct.unpack("!i", tls.recv(4))
            tls.recv(length - 4)
            body = b"SFATAL\0Mrole \"certrotate-probe\" does not exist\0\0"
            tls.sendall(b"E" + struct.pack("!i", len(body) + 4) + body)
        else:
            tls.recv(1)
        tls.close()

    def close(self) -> None:
        self.stopping.set()
        self.thread.join(5)
        self.listener.close()


@pytest.fixture
def fake_node(tmp_path, ca):
    nodes: list[FakeNode] = []

    def start(*, preamble: bytes | None = b"S", chain: bool = False, verify_clients: bool = True,
              max_version: ssl.TLSVersion | None = None, silent: bool = False) -> SimpleNamespace:
        node = pki.issue_node(ca, ["127.0.0.1"], key_type=FAST)
        (tmp_path / "node.crt").write_bytes(node.cert_pem + (ca.cert_pem if chain else b""))
        (tmp_path / "node.key").write_bytes(node.key_pem())
        (tmp_path / "ca.crt").write_bytes(ca.cert_pem)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(tmp_path / "node.crt", tmp_path / "node.key")
        if verify_clients:
            context.load_verify_locations(tmp_path / "ca.crt")
            context.verify_mode = ssl.CERT_OPTIONAL  # like PostgreSQL with ssl_ca_file
        if max_version:
            context.maximum_version = max_version
        server = FakeNode(context, preamble=preamble, silent=silent)
        nodes.append(server)
        return SimpleNamespace(addr=server.addr, node=node)

    yield start
    for server in nodes:
        server.close()


def test_direct_tls_probe_returns_the_served_chain_leaf_first(fake_node, ca):
    node = fake_node(preamble=None, chain=True)

    served = probe_http(node.addr)

    assert served.fingerprint == node.node.fingerprint
    assert served.chain == (node.node.certificate, ca.certificate)
    assert served.chain_is_complete
    assert served.sans == ["127.0.0.1"]


def test_sql_probe_speaks_the_sslrequest_first(fake_node):
    node = fake_node()
    assert probe_served_certificate(node.addr, postgres_preamble=True).fingerprint == node.node.fingerprint


def test_a_node_answering_n_to_the_sslrequest_does_not_offer_tls(fake_node):
    node = fake_node(preamble=b"N")
    with pytest.raises(CertRotateError, match=rf"^The node does not offer TLS on {node.addr}: it answered 'N'"):
        probe_sql(node.addr)


def test_a_refused_port_fails_fast_with_a_sentence_naming_the_address():
    with socket.socket() as placeholder:
        placeholder.bind(("127.0.0.1", 0))
        addr = f"127.0.0.1:{placeholder.getsockname()[1]}"
    started = time.monotonic()

    with pytest.raises(CertRotateError) as caught:
        probe_sql(addr, timeout=5)

    assert time.monotonic() - started < 1
    assert str(caught.value).startswith(f"Connection to {addr} was refused")


def test_a_silent_server_times_out_with_a_sentence(fake_node):
    node = fake_node(silent=True)
    started = time.monotonic()

    with pytest.raises(CertRotateError) as caught:
        probe_sql(node.addr, timeout=0.5)

    assert time.monotonic() - started < 2
    assert str(caught.value) == f"{node.addr} did not answer within 0.5 s (waiting for the answer to the SSLRequest)."


def test_wait_for_fingerprint_raises_only_when_no_probe_ever_succeeded():
    with socket.socket() as placeholder:
        placeholder.bind(("127.0.0.1", 0))
        addr = f"127.0.0.1:{placeholder.getsockname()[1]}"
    with pytest.raises(CertRotateError, match="refused"):
        wait_for_fingerprint(addr, "00" * 32, timeout=0.5)


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_trust_probe_over_tls_1_2_and_1_3(fake_node, ca, unrelated_ca, version):
    node = fake_node(max_version=version)

    assert probe_trust(node.addr, ca).trusted
    verdict = probe_trust(node.addr, unrelated_ca)
    assert not verdict.trusted and "(unknown CA)" in verdict.detail


def test_trust_probe_on_direct_tls(fake_node, ca, unrelated_ca):
    node = fake_node(preamble=None)

    assert probe_trust(node.addr, ca, postgres_preamble=False).trusted
    assert not probe_trust(node.addr, unrelated_ca, postgres_preamble=False).trusted


def test_a_node_that_asks_for_no_client_certificate_trusts_no_ca(fake_node, ca):
    node = fake_node(verify_clients=False)

    verdict = probe_trust(node.addr, ca)

    assert not verdict.trusted
    assert "did not ask for a client certificate" in verdict.detail


def test_trust_probe_failures_are_sentences_naming_the_address(ca):
    with socket.socket() as placeholder:
        placeholder.bind(("127.0.0.1", 0))
        addr = f"127.0.0.1:{placeholder.getsockname()[1]}"
    with pytest.raises(CertRotateError, match=f"^Connection to {addr} was refused"):
        probe_trust(addr, ca, timeout=2)


def test_the_probe_key_lives_in_a_private_file_only_while_loading(fake_node, ca, unrelated_ca, monkeypatch):
    seen = []
    original = ssl.SSLContext.load_cert_chain

    def spy(self, certfile, keyfile=None, password=None):
        seen.append((stat.S_IMODE(os.stat(os.path.dirname(keyfile)).st_mode), stat.S_IMODE(os.stat(keyfile).st_mode), keyfile))
        return original(self, certfile, keyfile, password)

    monkeypatch.setattr(ssl.SSLContext, "load_cert_chain", spy)
    node = fake_node()
    client = make_probe_client(unrelated_ca)

    verdict = probe_trust(node.addr, unrelated_ca, client=client)

    dir_mode, key_mode, keyfile = seen[-1]  # the first load is the fake node's own
    assert (dir_mode, key_mode) == (0o700, 0o600)
    assert not os.path.exists(os.path.dirname(keyfile))
    key_pem = client.key_pem(pkcs8=True).decode()
    assert "PRIVATE KEY" not in verdict.detail and key_pem not in repr(verdict) and key_pem not in repr(client)


@pytest.mark.parametrize("bad", ["localhost", "host:", ":26257", "host:99999", "::1:26257", "h:p"])
def test_addresses_must_be_host_and_port(bad):
    with pytest.raises(BadInput):
        split_address(bad)


def test_ipv6_addresses_are_bracketed():
    assert split_address("[::1]:26257") == ("::1", 26257)
    assert split_address("db.example.com:5432") == ("db.example.com", 5432)


def test_the_sql_probe_on_a_direct_tls_port_says_the_sslrequest_went_unanswered(fake_node):
    node = fake_node(preamble=None)
    with pytest.raises(CertRotateError, match=rf"^(The node does not offer TLS on {node.addr}|{node.addr} closed the connection without answering the SSLRequest)"):
        probe_sql(node.addr, timeout=2)


def test_the_trust_probe_is_bounded_by_its_timeout(fake_node, ca):
    node = fake_node(silent=True)
    started = time.monotonic()

    with pytest.raises(CertRotateError, match=rf"^{node.addr} did not answer within 0.5 s"):
        probe_trust(node.addr, ca, timeout=0.5)

    assert time.monotonic() - started < 1.5
