"""The lab's console: a stand-in for the DB Console's TLS listener, with CockroachDB's certificate rules."""

from __future__ import annotations

import time
import tomllib

from core import pki
from core.lab.procs import pid_alive
from core.remote.probes import probe_http, probe_sql, wait_for_fingerprint
from tests.ui_support import OrgCA


def on_disk(node, name: str) -> str:
    from cryptography import x509
    return pki.sha256_fingerprint(x509.load_pem_x509_certificates((node.certs_dir / name).read_bytes())[0])


def served_after_reload(node, expected: str) -> str:
    node.console.reload()
    return wait_for_fingerprint(node.http_addr, expected, timeout=10, postgres_preamble=False)


def reload_handled(node) -> str:
    """SIGHUP the console and return what it logged on handling the signal (every reload logs one line)."""
    seen = len(node.console.log_path.read_text().splitlines())
    node.console.reload()
    deadline = time.monotonic() + 10
    while len(lines := node.console.log_path.read_text().splitlines()) == seen:
        assert time.monotonic() < deadline, "the console never handled the reload"
        time.sleep(0.02)
    return lines[seen].split("] ", 1)[1]


def test_a_lab_without_console_has_no_http_addr(lab_factory):
    lab = lab_factory(1)
    assert lab.nodes[0].console is None
    assert "http_addr" not in tomllib.loads(lab.state_path.read_text())["nodes"][0]


def test_each_console_serves_node_crt_over_direct_tls_and_is_in_the_state_file(lab_factory):
    lab = lab_factory(2, console=True)
    nodes = tomllib.loads(lab.state_path.read_text())["nodes"]
    assert [n["http_addr"] for n in nodes] == [node.http_addr for node in lab.nodes]
    for node in lab.nodes:
        assert probe_http(node.http_addr).fingerprint == on_disk(node, "node.crt") == probe_sql(node.sql_addr).fingerprint


def test_ui_crt_is_served_only_with_its_key_and_a_bad_pair_keeps_the_previous_one(lab_factory):
    lab = lab_factory(1, console=True)
    node, org = lab.nodes[0], OrgCA()
    ui = org.issue_ui([node.address])
    node_fp = on_disk(node, "node.crt")
    node.install_files({"ui.crt": org.chain_pem(ui)})
    assert reload_handled(node) == "serving node.crt"                       # ui.crt without ui.key: node.crt
    assert probe_http(node.http_addr).fingerprint == node_fp
    node.install_files({"ui.key": ui.key_pem()})
    assert served_after_reload(node, ui.fingerprint) == ui.fingerprint
    assert len(probe_http(node.http_addr).chain) == 2                       # the intermediate goes along
    node.install_files({"ui.key": org.issue_ui([node.address]).key_pem()})  # a key of another certificate
    assert reload_handled(node).startswith("reload failed, still serving the previous certificate")
    assert probe_http(node.http_addr).fingerprint == ui.fingerprint


def test_the_reload_command_over_ssh_signals_postgres_and_the_console(lab_factory):
    lab = lab_factory(1, console=True)
    node, org = lab.nodes[0], OrgCA()
    ui = org.issue_ui([node.address])
    node.install_files({"ui.crt": org.chain_pem(ui), "ui.key": ui.key_pem()})
    with lab.ssh(node) as ssh:
        _, stdout, _ = ssh.exec_command(node.reload_command)
        assert stdout.channel.recv_exit_status() == 0
    assert wait_for_fingerprint(node.http_addr, ui.fingerprint, timeout=10, postgres_preamble=False) == ui.fingerprint


def test_stopping_the_lab_stops_every_console_by_pid(lab_factory):
    lab = lab_factory(2, console=True)
    pids = [node.console.pid for node in lab.nodes]
    assert all(pids) and set(pids) <= set(lab.pids)
    lab.stop()
    assert not any(pid_alive(pid) for pid in pids)


def test_a_node_without_postgresql_answers_the_rotation_probes_on_its_sql_port_and_reloads_its_ca(lab_factory):
    from core.pki import bundle
    from core.remote.probes import probe_trust
    from core.remote.ssh import SshPool
    from core.config import state as state_mod

    lab = lab_factory(2, postgres=False)
    node = lab.nodes[0]
    assert node.postgres is None and node.sql_stand_in is not None
    assert probe_sql(node.sql_addr).fingerprint == on_disk(node, "node.crt")
    assert probe_trust(node.sql_addr, lab.ca).trusted
    stranger = pki.issue_ca(key_type="ecdsa-p256", common_name="Stranger CA")
    refused = probe_trust(node.sql_addr, stranger)
    assert not refused.trusted and refused.alert == "unknown CA"

    node.install_files({"ca.crt": bundle.combine(stranger.cert_pem, lab.ca.cert_pem)})
    state = state_mod.load(lab.state_path)
    with SshPool() as pool:  # the reload command in the state file, run over SSH as certrotate runs it
        assert pool.session(state.inventory.nodes[0], state.base_dir).run(node.reload_command).ok
    deadline = time.monotonic() + 10
    while not probe_trust(node.sql_addr, stranger).trusted:
        assert time.monotonic() < deadline, "the stand-in did not re-read ca.crt on SIGHUP"
    pids = lab.pids
    lab.stop()
    assert not any(pid_alive(pid) for pid in pids)
