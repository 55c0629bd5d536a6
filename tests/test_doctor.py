"""`certrotate doctor` and `explain()`: each diagnosis reproduced on a real lab node.

The client errors are the ones libpq really prints (psycopg with verify-full) against a
real PostgreSQL node; the doctor's findings are what the operator reads on stdout.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
from pathlib import Path

import psycopg
import pytest

from core import pki
from core.diagnose import doctor
from core.files import write_private, write_public
from core.lab.org_ca import ExampleOrgCA
from core.lab.postgres import connect_tls
from core.remote import probes
from tui.cli import main


def _client_dir(directory: Path, *, bundle: bytes, client: pki.Issued, user: str = "root") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    write_public(directory / "ca.crt", bundle, overwrite=True)
    write_public(directory / f"client.{user}.crt", client.cert_pem, overwrite=True)
    write_private(directory / f"client.{user}.key", client.key_pem(), overwrite=True)
    return directory


def _client_error(**kwargs) -> str:
    with pytest.raises(psycopg.OperationalError) as failure:
        connect_tls(**kwargs).close()
    return str(failure.value)


def _run(capsys, *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().out


def _serve(node, issued: pki.Issued) -> None:
    """Install a node certificate and reload, until the node serves it."""
    node.install_node_cert(issued)
    node.reload()
    assert probes.wait_for_fingerprint(node.sql_addr, issued.fingerprint) == issued.fingerprint


# -- explain() on what libpq really prints ------------------------------------------------------


def test_client_bundle_without_the_node_ca_is_explained_as_an_untrusted_server(lab_factory):
    lab = lab_factory(1, clients=("root",))
    node = lab.nodes[0]
    other_ca = pki.issue_ca(common_name="Some other CA")
    certs = _client_dir(lab.workdir / "stale-client", bundle=other_ca.cert_pem, client=pki.issue_client(lab.ca, "root"))
    error = _client_error(address=node.address, certs_dir=certs, user="root", port=node.sql_port)
    assert "certificate verify failed" in error
    assert "does not trust the CA that signed the server's certificate" in doctor.explain(error).cause


def test_expired_client_certificate_is_explained_as_expired(lab_factory):
    lab = lab_factory(1, clients=("root",))
    node = lab.nodes[0]
    expired = pki.issue_client(lab.ca, "root", now=pki.utcnow() - dt.timedelta(days=10), lifetime=dt.timedelta(days=1))
    certs = _client_dir(lab.workdir / "old-client", bundle=lab.ca.cert_pem, client=expired)
    error = _client_error(address=node.address, certs_dir=certs, user="root", port=node.sql_port)
    explanation = doctor.explain(error)
    assert "refused your client certificate because it has expired" in explanation.cause
    assert "create-client" in explanation.fix


def test_client_certificate_from_an_untrusted_ca_is_explained_as_unknown_ca(lab_factory):
    lab = lab_factory(1, clients=("root",))
    node = lab.nodes[0]
    foreign = pki.issue_client(pki.issue_ca(common_name="Foreign CA"), "root")
    certs = _client_dir(lab.workdir / "foreign-client", bundle=lab.ca.cert_pem, client=foreign)
    error = _client_error(address=node.address, certs_dir=certs, user="root", port=node.sql_port)
    assert "alert unknown ca" in error
    assert "server does not trust the CA that signed your client certificate" in doctor.explain(error).cause


def test_host_name_not_in_the_sans_is_explained_as_a_name_mismatch(lab_factory):
    lab = lab_factory(1, clients=("root",))
    node = lab.nodes[0]
    certs = lab.local_certs_dir
    with pytest.raises(psycopg.OperationalError) as failure:
        psycopg.connect(
            host="db.example.test", hostaddr=node.address, port=node.sql_port, user="root", dbname="postgres",
            sslmode="verify-full", sslrootcert=str(certs / "ca.crt"), sslcert=str(certs / "client.root.crt"),
            sslkey=str(certs / "client.root.key"), connect_timeout=10,
        ).close()
    assert "does not match host name" in str(failure.value)
    assert "not among the server certificate's subject alternative names" in doctor.explain(str(failure.value)).cause


@pytest.mark.parametrize(
    ("message", "cause_words"),
    [
        ("x509: certificate signed by unknown authority", "does not trust the CA that signed the server's"),
        ("remote error: tls: bad certificate", "server refused your client certificate"),
        ("x509: certificate has expired or is not yet valid", "outside its validity period"),
        ("x509: certificate is valid for 10.0.0.1, not db.example.com", "subject alternative names"),
        ("SSL SYSCALL error: EOF detected", "closed in the middle of the TLS handshake"),
        ("SSL error: certificate verify failed", "does not trust the CA that signed the server's"),
        ("SSL error: tlsv1 alert unknown ca", "does not trust the CA that signed your client"),
        ("remote error: tls: unknown certificate authority", "does not trust the CA that signed your client"),
        ("remote error: tls: expired certificate", "refused your client certificate because it has expired"),
    ],
)
def test_explain_names_the_cause_of_each_common_client_error(message, cause_words):
    assert cause_words in doctor.explain(message).cause


def test_explain_cli_prints_cause_and_fix(capsys):
    code, out = _run(capsys, "doctor", "--explain", "SSL SYSCALL error: EOF detected")
    assert code == 0
    assert out.startswith("cause: ") and "\nfix:   " in out


# -- doctor on a node of the state file ---------------------------------------------------------


def test_healthy_node_is_all_ok(lab_factory, capsys):
    lab = lab_factory(1, clients=("root",))
    code, out = _run(capsys, "doctor", "n1", "--state", str(lab.state_path), "--user", "root")
    assert code == 0, out
    assert "FAIL" not in out and "WARN" not in out
    for check in ("chain:", "hostname:", "on-disk:", "client-ca:", "client-key:", "permissions:", "client-accepted:"):
        assert f"OK   {check}" in out


def test_node_serving_a_certificate_expiring_soon_is_a_warning(lab_factory, capsys):
    lab = lab_factory(1, clients=("root",))
    node = lab.nodes[0]
    _serve(node, pki.issue_node(lab.ca, node.addresses, lifetime=dt.timedelta(days=10)))
    code, out = _run(capsys, "doctor", "n1", "--state", str(lab.state_path), "--warn-days", "30")
    assert code == 1
    assert f"WARN expiry: the certificate served on {node.sql_addr} expires on" in out


def test_node_with_a_new_node_crt_not_yet_reloaded_shows_reload_pending(lab_factory, capsys):
    lab = lab_factory(1, clients=("root",))
    node = lab.nodes[0]
    node.install_node_cert(pki.issue_node(lab.ca, node.addresses))  # no reload
    code, out = _run(capsys, "doctor", "n1", "--state", str(lab.state_path))
    assert code == 1
    assert "WARN on-disk: served ≠ on disk: reload pending" in out


def test_node_unreachable_over_ssh_still_gets_its_network_checks_and_a_warning(lab_factory, capsys):
    lab = lab_factory(1, clients=("root",))
    lab.nodes[0].stop_sshd()
    code, out = _run(capsys, "doctor", "n1", "--state", str(lab.state_path))
    assert code == 1
    assert "OK   chain:" in out
    assert "WARN on-disk: cannot read " in out and "node.crt on n1" in out


def test_db_console_is_checked_on_http_addr_and_a_ui_crt_not_yet_reloaded_is_reload_pending(lab_factory, capsys):
    lab = lab_factory(1, clients=("root",), console=True)
    node = lab.nodes[0]
    code, out = _run(capsys, "doctor", "n1", "--state", str(lab.state_path))
    assert code == 0, out
    assert f"OK   console: the DB Console on {node.http_addr} serves" in out
    assert f"OK   on-disk: the node serves its {node.certs_dir}/node.crt." in out  # no ui.crt: node.crt, like CockroachDB

    org = ExampleOrgCA()
    ui = org.issue_ui([node.address])
    node.install_files({"ui.crt": org.chain_pem(ui), "ui.key": ui.key_pem()})  # written, not reloaded
    code, out = _run(capsys, "doctor", "n1", "--state", str(lab.state_path))
    assert code == 1
    assert f"WARN on-disk: served ≠ on disk: reload pending ({node.certs_dir}/ui.crt" in out

    node.reload()
    code, out = _run(capsys, "doctor", "n1", "--state", str(lab.state_path))
    assert code == 0, out
    assert f"sha256 {ui.fingerprint[:16]}" in out
    assert f"OK   on-disk: the node serves its {node.certs_dir}/ui.crt." in out
    assert f"OK   hostname: {node.address} is among the served certificate's SANs." in out


def test_unknown_node_name_is_bad_input(lab_factory, capsys):
    lab = lab_factory(1, clients=("root",))
    code = main(["doctor", "n9", "--state", str(lab.state_path)])
    assert code == 2
    assert capsys.readouterr().err.strip() == "certrotate: No node named 'n9' in the inventory."


def test_node_certificate_from_another_ca_fails_the_chain_check(lab_factory, capsys):
    lab = lab_factory(1, clients=("root",))
    node = lab.nodes[0]
    other_ca = pki.issue_ca(common_name="Unrelated CA")
    node.install_files({"ca.crt": lab.ca.cert_pem + other_ca.cert_pem})
    _serve(node, pki.issue_node(other_ca, node.addresses))
    code, out = _run(capsys, "doctor", "n1", "--state", str(lab.state_path), "--no-ssh")
    assert code == 2
    assert "FAIL chain: the certificate served on" in out and "no CA in the bundle issued it" in out


def test_inventory_address_missing_from_the_sans_fails_the_hostname_check(lab_factory):
    lab = lab_factory(1, clients=("root",))
    from core.config import state as state_mod

    state = state_mod.load(lab.state_path)
    node = dataclasses.replace(state.inventory.node("n1"), addresses=("db.example.test",))
    findings = doctor.doctor_node(
        node, state.base_dir, state.inventory.cluster.local_certs_dir, state.inventory.cluster.ca_key, now=pki.utcnow()
    )
    failed = [f for f in findings if f.level == doctor.FAIL]
    assert [f.check for f in failed] == ["hostname"]
    assert "not for db.example.test" in failed[0].message


def test_without_the_ca_key_the_client_ca_check_is_skipped_with_a_note(lab_factory, capsys):
    lab = lab_factory(1, clients=("root",))
    lab.ca_key_path.unlink()
    code, out = _run(capsys, "doctor", "n1", "--state", str(lab.state_path), "--no-ssh")
    assert code == 0
    assert "SKIP client-ca: whether the node trusts the client CA is not checked: the CA key is not at hand." in out


# -- doctor on a client's certs dir -------------------------------------------------------------


def test_client_dir_whose_bundle_lacks_the_node_ca_fails_the_chain_check(lab_factory, capsys):
    lab = lab_factory(1, clients=("root",))
    node = lab.nodes[0]
    other_ca = pki.issue_ca(common_name="Some other CA")
    certs = _client_dir(lab.workdir / "stale-client", bundle=other_ca.cert_pem, client=pki.issue_client(lab.ca, "root"))
    code, out = _run(capsys, "doctor", "--certs-dir", str(certs), "--user", "root", "--host", node.sql_addr)
    assert code == 2
    assert f"FAIL chain: the certificate served on {node.sql_addr} does not chain" in out


def test_client_certificate_the_node_does_not_trust_fails_the_handshake_check(lab_factory, capsys):
    lab = lab_factory(1, clients=("root",))
    node = lab.nodes[0]
    foreign_ca = pki.issue_ca(common_name="Foreign CA")
    certs = _client_dir(lab.workdir / "foreign-client", bundle=lab.ca.cert_pem + foreign_ca.cert_pem,
                        client=pki.issue_client(foreign_ca, "root"))
    code, out = _run(capsys, "doctor", "--certs-dir", str(certs), "--user", "root", "--host", node.sql_addr)
    assert code == 2
    assert f"FAIL client-accepted: {node.sql_addr} rejects client.root.crt (unknown CA)." in out


def test_client_key_readable_by_others_fails_the_permission_check(tmp_path, capsys):
    ca = pki.issue_ca()
    certs = _client_dir(tmp_path / "client", bundle=ca.cert_pem, client=pki.issue_client(ca, "app"), user="app")
    os.chmod(certs / "client.app.key", 0o644)
    code, out = _run(capsys, "doctor", "--certs-dir", str(certs), "--user", "app")
    assert code == 2
    assert "FAIL permissions: key file client.app.key has permissions -rw-r--r--" in out


def test_client_key_of_another_certificate_fails_the_key_pair_check(tmp_path, capsys):
    ca = pki.issue_ca()
    certs = _client_dir(tmp_path / "client", bundle=ca.cert_pem, client=pki.issue_client(ca, "app"), user="app")
    write_private(certs / "client.app.key", pki.issue_client(ca, "app").key_pem(), overwrite=True)
    code, out = _run(capsys, "doctor", "--certs-dir", str(certs), "--user", "app")
    assert code == 2
    assert "FAIL client-key: client.app.key does not match client.app.crt" in out


def test_expired_client_certificate_in_the_dir_is_a_failure(tmp_path, capsys):
    ca = pki.issue_ca()
    expired = pki.issue_client(ca, "app", now=pki.utcnow() - dt.timedelta(days=10), lifetime=dt.timedelta(days=1))
    certs = _client_dir(tmp_path / "client", bundle=ca.cert_pem, client=expired, user="app")
    code, out = _run(capsys, "doctor", "--certs-dir", str(certs), "--user", "app")
    assert code == 2
    assert "FAIL expiry: client certificate" in out and "expired on" in out
