"""The lab itself: real sshd + PostgreSQL nodes on loopback that every other test builds on.

One claim per test: the nodes come up with TLS and certificate logins, the operator's
files describe them (docs/state-file.md), SSH works with the operator key against the
lab's known_hosts, a reload makes a node serve a new certificate, hosts can go down and
come back, and stopping leaves no process behind.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import signal
import socket
import ssl
import stat
import struct
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import paramiko
import psycopg
import pytest

from core import pki
from core.errors import CertRotateError
from core.lab import cluster
from core.lab.cluster import Lab
from core.lab.postgres import connect_tls
from core.lab.procs import descendants_of, is_root, pid_alive, stop_pid
from core.lab.sshd import SshServer, public_key_fingerprint

pytestmark = pytest.mark.lab

SSL_REQUEST = struct.pack("!ii", 8, 80877103)


def served_fingerprint(address: str, port: int) -> str:
    """SHA-256 of the certificate PostgreSQL presents after an SSLRequest (hex, as core.pki prints it)."""
    with socket.create_connection((address, port), timeout=5) as raw:
        raw.sendall(SSL_REQUEST)
        assert raw.recv(1) == b"S"
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        with context.wrap_socket(raw) as tls:
            return hashlib.sha256(tls.getpeercert(binary_form=True)).hexdigest()


def run_over_ssh(lab: Lab, host, command: str) -> tuple[int, str]:
    client = lab.ssh(host)
    try:
        _, stdout, stderr = client.exec_command(command, timeout=20)
        output = stdout.read().decode() + stderr.read().decode()
        return stdout.channel.recv_exit_status(), output.strip()
    finally:
        client.close()


def test_three_nodes_come_up_on_their_own_loopback_addresses(lab):
    addresses = [node.address for node in lab.nodes]
    assert [node.name for node in lab.nodes] == ["n1", "n2", "n3"]
    assert len(set(addresses)) == 3
    assert all(address.startswith("127.") for address in addresses)
    for node in lab.nodes:
        assert node.sshd.running and node.postgres.running
        assert served_fingerprint(node.address, node.sql_port)


def test_state_file_describes_the_lab_as_spec_says(lab):
    state = tomllib.loads(lab.state_path.read_text())
    base = lab.state_path.parent
    cluster = state["cluster"]
    assert cluster["profile"] == "postgres"
    assert (base / cluster["local_certs_dir"] / "ca.crt").is_file()
    assert stat.S_IMODE((base / cluster["ca_key"]).stat().st_mode) == 0o600
    for entry, node in zip(state["nodes"], lab.nodes, strict=True):
        assert entry["name"] == node.name
        assert (entry["ssh_host"], entry["ssh_port"], entry["ssh_user"]) == (node.address, node.ssh_port, lab.ssh_user)
        assert (base / entry["ssh_key"]) == lab.operator_key
        assert (base / entry["known_hosts"]) == lab.known_hosts
        assert entry["certs_dir"] == str(node.certs_dir)
        assert entry["addresses"] == [node.address, "localhost"]
        assert entry["sql_addr"] == f"{node.address}:{node.sql_port}"
        assert str(node.postgres.pid_path) in entry["reload"]
    assert [client["user"] for client in state["clients"]] == ["root", "app"]
    assert "PRIVATE KEY" not in lab.state_path.read_text()


def test_key_files_are_private_and_node_keys_belong_to_the_server_account(lab):
    for key in [lab.ca_key_path, lab.operator_key, *lab.local_certs_dir.glob("*.key")]:
        assert stat.S_IMODE(key.stat().st_mode) == 0o600, key
    for node in lab.nodes:
        node_key = (node.certs_dir / "node.key").stat()
        assert stat.S_IMODE(node_key.st_mode) == 0o600
        assert node_key.st_uid == lab.run_as.uid


def test_sql_with_client_certificate_and_verify_full_on_every_node(lab):
    for node in lab.nodes:
        for user in ("root", "app"):
            with lab.connect_sql(node, user) as conn:
                row = conn.execute("SELECT current_user, ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetchone()
            assert row == (user, True)


def test_client_certificate_from_another_ca_is_refused(lab, tmp_path):
    stranger = pki.issue_client(pki.issue_ca(key_type="ecdsa-p256"), "root", key_type="ecdsa-p256")
    (tmp_path / "client.root.crt").write_bytes(stranger.cert_pem)
    key = tmp_path / "client.root.key"
    key.write_bytes(stranger.key_pem())
    key.chmod(0o600)
    node = lab.nodes[0]
    with pytest.raises(psycopg.OperationalError):
        connect_tls(node.address, tmp_path, "root", port=node.sql_port, ca_file=lab.local_certs_dir / "ca.crt")


def test_ssh_login_with_operator_key_and_known_hosts(lab):
    known = lab.known_hosts.read_text().splitlines()
    assert len(known) == 3
    for node in lab.nodes:
        assert f"[{node.address}]:{node.ssh_port} ssh-ed25519 " in "\n".join(known)
        client = paramiko.SSHClient()
        client.load_host_keys(str(lab.known_hosts))
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        client.connect(
            node.address,
            port=node.ssh_port,
            username=lab.ssh_user,
            key_filename=str(lab.operator_key),
            look_for_keys=False,
            allow_agent=False,
            timeout=10,
        )
        try:
            server_key = client.get_transport().get_remote_server_key()
            assert public_key_fingerprint(f"{server_key.get_name()} {server_key.get_base64()}") == node.sshd.host_key_fingerprint
            _, stdout, _ = client.exec_command("id -un")
            assert stdout.read().decode().strip() == lab.ssh_user
        finally:
            client.close()


def test_unknown_host_key_is_rejected(lab, tmp_path):
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    node = lab.nodes[0]
    client = paramiko.SSHClient()
    client.load_host_keys(str(empty))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    with pytest.raises(paramiko.SSHException, match="not found in known_hosts"):
        client.connect(
            node.address,
            port=node.ssh_port,
            username=lab.ssh_user,
            key_filename=str(lab.operator_key),
            look_for_keys=False,
            allow_agent=False,
            timeout=10,
        )
    client.close()


def test_reload_command_makes_the_node_serve_its_new_certificate(lab):
    node = lab.nodes[1]
    before = served_fingerprint(node.address, node.sql_port)
    replacement = pki.issue_node(lab.ca, node.addresses)
    node.install_node_cert(replacement)
    assert served_fingerprint(node.address, node.sql_port) == before  # nothing changes until the reload

    status, output = run_over_ssh(lab, node, node.reload_command)
    assert status == 0, output

    deadline = time.monotonic() + 10
    while served_fingerprint(node.address, node.sql_port) != replacement.fingerprint:
        assert time.monotonic() < deadline, "the node still serves its old certificate after the reload"
        time.sleep(0.05)
    with lab.connect_sql(node, "root") as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_a_node_sshd_goes_down_and_comes_back_with_the_same_host_key(lab):
    node = lab.nodes[2]
    fingerprint = node.sshd.host_key_fingerprint
    node.stop_sshd()
    with pytest.raises(OSError):
        socket.create_connection((node.address, node.ssh_port), timeout=2).close()
    with lab.connect_sql(node, "root") as conn:  # the database stays up
        assert conn.execute("SELECT 1").fetchone() == (1,)
    node.start_sshd()
    assert node.sshd.host_key_fingerprint == fingerprint
    assert run_over_ssh(lab, node, "true") == (0, "")


def test_stopping_a_node_postgres_and_starting_it_again(lab):
    node = lab.nodes[0]
    old_pid = node.postgres.pid
    node.stop_postgres()
    assert not pid_alive(old_pid)
    with pytest.raises(OSError):
        socket.create_connection((node.address, node.sql_port), timeout=2).close()
    node.start_postgres()
    with lab.connect_sql(node, "root") as conn:
        assert conn.execute("SELECT current_user").fetchone() == ("root",)


def test_stop_leaves_no_process_behind_and_is_idempotent(lab_factory):
    lab = lab_factory(3, ssh_clients=("app",))
    session = lab.ssh("n1")  # an open session: its sshd child must go too
    server_pids = lab.pids
    children = [pid for node in lab.nodes for pid in descendants_of(node.postgres.pid)]
    assert len(server_pids) == 3 * 2 + 1 and children
    lab.stop()
    lab.stop()
    session.close()
    assert [pid for pid in server_pids + children if pid_alive(pid)] == []
    assert lab.pids == []
    assert not lab.workdir.exists()
    for node in lab.nodes:
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((node.address, node.sql_port))


def test_two_labs_run_side_by_side(lab_factory):
    first, second = lab_factory(1), lab_factory(1)
    assert first.block != second.block
    for each in (first, second):
        with each.connect_sql("n1", "root") as conn:
            assert conn.execute("SELECT inet_server_addr()::text").fetchone()[0].startswith(each.nodes[0].address)


def test_client_delivered_over_ssh_has_its_own_host(lab_factory):
    lab = lab_factory(1, ssh_clients=("app",))
    host = lab.client_host("app")
    state = tomllib.loads(lab.state_path.read_text())
    app = next(client for client in state["clients"] if client["user"] == "app")
    assert (app["ssh_host"], app["ssh_port"], app["certs_dir"]) == (host.address, host.ssh_port, str(host.certs_dir))
    status, listing = run_over_ssh(lab, host, f"ls {host.certs_dir}")
    assert status == 0 and listing.split() == ["ca.crt", "client.app.crt", "client.app.key"]
    assert len(lab.known_hosts.read_text().splitlines()) == 2


@pytest.mark.skipif(not is_root(), reason="only root can log in as another account")
def test_login_as_postgres_sees_the_files_it_owns(lab_factory):
    lab = lab_factory(1, ssh_user="postgres")
    node = lab.nodes[0]
    status, output = run_over_ssh(lab, node, f"id -un && stat -c '%U %a' {node.certs_dir}/node.key && {node.reload_command}")
    assert status == 0, output
    assert output.splitlines() == ["postgres", "postgres 600"]


def test_lab_without_root_runs_everything_as_the_current_user(lab):
    me = os.getuid()
    if is_root():
        assert lab.ssh_user == "root" and lab.run_as.name == "postgres"
    else:
        assert lab.run_as.uid == me and lab.nodes[0].certs_dir.stat().st_uid == me


def test_stop_falls_back_to_sigkill_for_a_process_that_ignores_sigterm():
    stubborn = subprocess.Popen(
        [sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print(1, flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE,
    )
    stubborn.stdout.readline()  # SIG_IGN is in place
    started = time.monotonic()
    stop_pid(stubborn.pid, timeout=0.5, process=stubborn)
    assert stubborn.returncode == -signal.SIGKILL
    assert time.monotonic() - started < 5
    stop_pid(stubborn.pid, process=stubborn)  # already gone: nothing happens


def test_servers_of_a_killed_process_are_stopped_by_the_next_lab(lab_factory):
    crashed = subprocess.run(
        [
            sys.executable,
            "-c",
            "import os; from core.lab import start_lab; lab = start_lab(nodes=2); "
            "print(' '.join(map(str, lab.pids)), lab.workdir, flush=True); os.kill(os.getpid(), 9)",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    *orphans, workdir = crashed.stdout.split()
    orphans = [int(pid) for pid in orphans]
    assert len(orphans) == 4 and all(pid_alive(pid) for pid in orphans)
    lab_factory(1)
    assert [pid for pid in orphans if pid_alive(pid)] == []
    assert not Path(workdir).exists()


def test_a_taken_port_is_reported_with_the_node_and_sshd_log(lab, tmp_path):
    node = lab.nodes[0]
    clash = SshServer(tmp_path / "clash", node.address, node.ssh_port, lab.authorized_keys, name="clash")
    with pytest.raises(CertRotateError, match=rf"sshd for clash on {node.address}:{node.ssh_port} did not start: .*in use"):
        clash.start()
    assert clash.pid is None


def test_default_ports_taken_on_every_address_fall_back_to_free_ones(lab_factory, monkeypatch):
    with socket.socket() as wildcard:
        wildcard.bind(("0.0.0.0", 0))
        wildcard.listen()
        taken = wildcard.getsockname()[1]
        monkeypatch.setattr(cluster, "DEFAULT_SQL_PORT", taken)
        lab = lab_factory(1)
        node = lab.nodes[0]
        assert node.sql_port != taken and node.ssh_port == 2222
        with lab.connect_sql(node, "root") as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)


def test_a_sweep_while_a_scratch_dir_takes_its_lock_leaves_that_dir_alone(tmp_path, monkeypatch):
    """Labs in parallel test workers make and sweep scratch dirs at the same time: a sweep that
    runs while another process is still taking its new dir's lock must not remove that dir."""
    from core.lab import scratch

    real_flock = scratch.fcntl.flock
    swept = []

    def flock_after_a_sweep(fd, operation):
        if not swept:
            swept.append(True)
            scratch.collect_stale(tmp_path, "race-")  # another process's sweep, at the worst moment
        return real_flock(fd, operation)

    monkeypatch.setattr(scratch.fcntl, "flock", flock_after_a_sweep)
    made = scratch.ScratchDir("race-", tmp_path)
    monkeypatch.undo()
    try:
        assert swept and made.path.is_dir()
        scratch.collect_stale(tmp_path, "race-")  # a later sweep finds it locked: it stays too
        assert made.path.is_dir()
    finally:
        made.remove()
    assert not made.path.exists()


def test_a_sweep_waits_until_a_sweep_in_another_process_has_finished(tmp_path):
    """So a new lab starts only once a dead lab's servers are stopped, even when another worker's lab
    (not this one) found them first and is still stopping them."""
    import threading

    from core.lab import scratch

    other = os.open(tmp_path / f".race-{scratch.SWEEP_LOCK_SUFFIX}", os.O_RDONLY | os.O_CREAT, 0o644)
    fcntl.flock(other, fcntl.LOCK_EX)  # the other process, in the middle of its sweep
    done = threading.Event()
    sweeper = threading.Thread(target=lambda: (scratch.collect_stale(tmp_path, "race-"), done.set()))
    sweeper.start()
    try:
        assert not done.wait(0.3)
    finally:
        os.close(other)
        sweeper.join(10)
    assert done.is_set()
