"""The SSH transport against real sshd servers on loopback (core.lab.sshd.SshServer).

Each claim is one test: what the operator sees when a host is unknown, changed, down,
silent or slow, and that a replaced file on a node is either the new one, complete, with
the old owner and mode — or byte-identical to before.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import paramiko
import pytest

from core.errors import BadInput, StepFailed
from core.lab.cluster import claim_block, make_lab_dir
from core.lab.procs import is_root
from core.lab.sshd import SshServer, generate_ed25519_key
from core.remote import remote_files as rf
from core.remote.known_hosts import (
    HostKeyChanged,
    UnknownHostKey,
    check_host_key,
    fingerprint,
    host_key_name,
    known_keys,
    preferred_host_key_types,
    record_host_key,
)
from core.remote.ssh import (
    HostTimeout,
    HostUnreachable,
    LoginRefused,
    SshPool,
    SshTarget,
    Timeouts,
    no_process_to_signal,
    resolve_endpoint,
)

pytestmark = pytest.mark.lab

SSH_PORT = 2222
needs_root = pytest.mark.skipif(not is_root(), reason="needs root: chown to another uid, a postgres login, mount")


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def local_snapshot(directory: Path) -> dict[str, tuple[str, int, int, int]]:
    """Every regular file under `directory` (backups excluded): sha256, mode, uid, gid."""
    snapshot = {}
    for path in sorted(directory.iterdir()):
        if path.is_file():
            info = path.stat()
            snapshot[path.name] = (sha(path.read_bytes()), info.st_mode & 0o7777, info.st_uid, info.st_gid)
    return snapshot


def temps_in(directory: Path) -> list[str]:
    """Temporary upload files left anywhere under `directory` (backup directories included)."""
    return [p.name for p in directory.rglob(f"{rf.TEMP_PREFIX}*{rf.TEMP_SUFFIX}")]


class ForwardingSshServer(SshServer):
    """A lab sshd that allows direct-tcpip, to serve as a ProxyJump bastion."""

    def _config_text(self) -> str:
        return super()._config_text().replace("AllowTcpForwarding no", "AllowTcpForwarding yes")


class Hosts:
    """Real sshd servers on one claimed loopback block, sharing one operator key."""

    def __init__(self) -> None:
        self.workdir = make_lab_dir("certrotate-ssh-test-")
        self.prefix, self._lock = claim_block([1, 2, 3, 4, 5], [SSH_PORT])
        self.operator_key = self.workdir / "id_ed25519"
        generate_ed25519_key(self.operator_key, "certrotate-test-operator")
        self.authorized_keys = self.workdir / "authorized_keys"
        shutil.copy(self.operator_key.with_name("id_ed25519.pub"), self.authorized_keys)
        os.chmod(self.authorized_keys, 0o644)
        self.servers: list[SshServer] = []
        self.root = self.add("n1", 1)
        self.known_hosts = self.workdir / "known_hosts"
        self.write_known_hosts()

    def add(self, name: str, host_number: int, *, cls: type[SshServer] = SshServer, login_user: str | None = None) -> SshServer:
        server = cls(
            self.workdir / f"sshd-{name}",
            f"{self.prefix}{host_number}",
            SSH_PORT,
            self.authorized_keys,
            name=name,
            login_user=login_user,
        )
        self.servers.append(server)
        server.start()
        return server

    def write_known_hosts(self) -> None:
        self.known_hosts.write_text("".join(s.host_key_line() + "\n" for s in self.servers))

    def target(self, server: SshServer, certs_dir: Path | None = None, **overrides) -> SshTarget:
        fields = dict(
            name=server.name,
            ssh_host=server.address,
            ssh_port=server.port,
            ssh_user="root" if is_root() else None,
            ssh_key=str(self.operator_key),
            known_hosts=str(self.known_hosts),
            certs_dir=str(certs_dir) if certs_dir else None,
        )
        fields.update(overrides)
        return SshTarget(**fields)

    def stop(self) -> None:
        for server in self.servers:
            server.stop()
        self._lock.release()
        shutil.rmtree(self.workdir, ignore_errors=True)


@pytest.fixture(scope="module")
def hosts():
    hosts = Hosts()
    try:
        yield hosts
    finally:
        hosts.stop()


@pytest.fixture
def pool():
    with SshPool(ssh_config=None, timeouts=Timeouts(connect=5, banner=5, auth=10, step=20), use_agent=False) as pool:
        yield pool


@pytest.fixture
def certs(hosts, request):
    """A fresh certs dir on the node (the node is this machine), 0755 so any login can read it."""
    directory = hosts.workdir / "certs" / request.node.name[:40]
    directory.mkdir(parents=True)
    os.chmod(directory, 0o755)
    return directory


@pytest.fixture
def session(hosts, pool, certs):
    return pool.session(hosts.target(hosts.root, certs))


# -- uploads ------------------------------------------------------------------------------


def test_upload_then_read_back(session, certs):
    bundle = b"-----BEGIN CERTIFICATE-----\n" + os.urandom(70000) + b"\n-----END CERTIFICATE-----\n"

    uploaded = rf.upload(session, f"{certs}/ca.crt", bundle)

    assert uploaded.changed and uploaded.sha256 == sha(bundle)
    assert rf.read_file(session, f"{certs}/ca.crt") == bundle
    assert rf.file_sha256(session, f"{certs}/ca.crt") == sha(bundle)
    assert rf.file_sha256(session, f"{certs}/missing.crt") is None
    assert [entry.name for entry in rf.list_dir(session, str(certs))] == ["ca.crt"]
    assert rf.stat(session, f"{certs}/ca.crt").mode == 0o644  # a new certificate: 0644
    assert rf.upload(session, f"{certs}/ca.crt", bundle).changed is False


def test_new_key_is_created_0600(session, certs):
    rf.upload(session, f"{certs}/node.key", b"-----BEGIN PRIVATE KEY-----\nsecret\n")

    assert (certs / "node.key").stat().st_mode & 0o777 == 0o600
    assert temps_in(certs) == []


@needs_root
def test_atomic_upload_keeps_mode_and_owner_of_replaced_file(session, certs):
    target = certs / "node.key"
    target.write_bytes(b"old key")
    os.chmod(target, 0o640)
    os.chown(target, 101 if _uid_exists(101) else 1234, 4321)
    before = target.stat()

    rf.upload(session, str(target), b"new key" * 1000)

    after = target.stat()
    assert target.read_bytes() == b"new key" * 1000
    assert (after.st_mode & 0o7777, after.st_uid, after.st_gid) == (0o640, before.st_uid, before.st_gid)
    assert after.st_ino != before.st_ino  # replaced by rename, not rewritten in place
    assert temps_in(certs) == []


def _uid_exists(uid: int) -> bool:
    import pwd

    try:
        pwd.getpwuid(uid)
        return True
    except KeyError:
        return False


@needs_root
def test_permission_denied_directory_leaves_target_and_names_host_and_dir(hosts, pool, certs):
    postgres_login = next((s for s in hosts.servers if s.name == "pg-login"), None) or hosts.add(
        "pg-login", 2, login_user="postgres"
    )
    hosts.write_known_hosts()
    target = certs / "ca.crt"
    target.write_bytes(b"original bundle\n")
    os.chmod(certs, 0o755)  # root's directory: postgres may read, not create
    session = pool.session(hosts.target(postgres_login, certs, ssh_user="postgres"))
    key_material = b"-----BEGIN PRIVATE KEY-----\nTOPSECRET\n"

    with pytest.raises(StepFailed) as failure:
        rf.upload_pair(session, rf.RemoteFile(str(target), b"new"), rf.RemoteFile(f"{certs}/node.key", key_material))

    message = str(failure.value)
    assert "pg-login" in message and postgres_login.address in message
    assert f"permission denied creating a file in {certs}" in message
    assert "TOPSECRET" not in message
    assert target.read_bytes() == b"original bundle\n"
    assert not (certs / "node.key").exists() and temps_in(certs) == []


@pytest.fixture
def tiny_disk(certs):
    if not is_root():
        pytest.skip("mounting a tmpfs needs root")
    mount_point = certs / "tiny"
    mount_point.mkdir()
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k,mode=0755", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        pytest.skip(f"mount -t tmpfs is not permitted here ({result.stderr.strip()})")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], check=False)


def test_full_remote_disk_leaves_target_and_no_temp(session, tiny_disk):
    target = tiny_disk / "ca.crt"
    target.write_bytes(b"old bundle\n" * 100)
    before = local_snapshot(tiny_disk)
    with open(tiny_disk / "filler", "wb") as filler:  # leave ~12 KiB free
        filler.write(b"\0" * (64 * 1024 - 16 * 1024))

    with pytest.raises(StepFailed) as failure:
        rf.upload(session, str(target), os.urandom(48 * 1024))

    message = str(failure.value)
    assert "n1" in message and str(target) in message and "full" in message
    assert local_snapshot(tiny_disk) == {**before, "filler": local_snapshot(tiny_disk)["filler"]}
    assert temps_in(tiny_disk) == []


def test_short_write_is_caught_by_the_read_back_hash(session, certs, monkeypatch):
    target = certs / "ca.crt"
    target.write_bytes(b"old bundle\n")
    real_write = paramiko.SFTPFile.write

    def truncating_write(self, data):  # a server that drops bytes without saying so
        return real_write(self, data[: len(data) // 2])

    monkeypatch.setattr(paramiko.SFTPFile, "write", truncating_write)
    with pytest.raises(StepFailed) as failure:
        rf.upload(session, str(target), b"new bundle\n" * 100)

    assert "did not arrive intact" in str(failure.value) and str(target) in str(failure.value)
    assert target.read_bytes() == b"old bundle\n"
    assert temps_in(certs) == []


def test_pair_upload_rolls_back_the_key_when_the_cert_rename_fails(session, certs, monkeypatch):
    (certs / "node.crt").write_bytes(b"old cert")
    (certs / "node.key").write_bytes(b"old key")
    os.chmod(certs / "node.key", 0o600)
    before = local_snapshot(certs)
    real_rename = paramiko.SFTPClient.posix_rename
    renamed = []

    def rename_fails_for_cert(self, old, new):
        renamed.append(new)
        if new.endswith("node.crt"):
            raise OSError("Failure")
        return real_rename(self, old, new)

    monkeypatch.setattr(paramiko.SFTPClient, "posix_rename", rename_fails_for_cert)
    with pytest.raises(StepFailed) as failure:
        rf.upload_pair(session, rf.RemoteFile(f"{certs}/node.crt", b"new cert"), rf.RemoteFile(f"{certs}/node.key", b"new key"))

    assert renamed[:2] == [f"{certs}/node.key", f"{certs}/node.crt"]  # key first, cert is the commit point
    assert "put back" in str(failure.value)
    assert local_snapshot(certs) == before
    assert temps_in(certs) == []


def test_relative_certs_dir_is_refused():
    with pytest.raises(BadInput, match="not an absolute path"):
        SshTarget(name="n1", ssh_host="127.0.0.1", certs_dir="certs")
    with pytest.raises(BadInput):
        SshTarget.from_node({"name": "n1", "ssh_host": "127.0.0.1", "certs_dir": "~/certs"})


def test_relative_remote_path_is_refused(session):
    with pytest.raises(BadInput):
        rf.upload(session, "certs/ca.crt", b"x")


# -- backups --------------------------------------------------------------------------------


@needs_root
def test_backups_restore_every_file_exactly_and_remove_added_files(session, certs):
    (certs / "ca.crt").write_bytes(b"old CA\n")
    (certs / "node.crt").write_bytes(b"old node cert\n")
    (certs / "node.key").write_bytes(b"old node key\n")
    os.chmod(certs / "node.key", 0o600)
    os.chown(certs / "node.key", 1234, 4321)
    os.chmod(certs / "ca.crt", 0o640)
    before = local_snapshot(certs)

    rf.upload(session, f"{certs}/ca.crt", b"combined bundle\n", rotation_id="rot-1")
    rf.upload_pair(
        session,
        rf.RemoteFile(f"{certs}/node.crt", b"new node cert\n"),
        rf.RemoteFile(f"{certs}/node.key", b"new node key\n"),
        rotation_id="rot-1",
    )
    rf.upload(session, f"{certs}/client.app.crt", b"added\n", rotation_id="rot-1")
    # A re-run of the same rotation must keep the backup of the ORIGINAL files.
    rf.upload(session, f"{certs}/ca.crt", b"bundle, second attempt\n", rotation_id="rot-1")

    backup = certs / ".certrotate-backup" / "rot-1"
    assert backup.stat().st_mode & 0o777 == 0o700
    assert (backup / "ca.crt").read_bytes() == b"old CA\n"
    assert (backup / "node.key").stat().st_mode & 0o777 == 0o600
    manifest = rf.read_manifest(session, "rot-1")
    assert manifest.entries[f"{certs}/client.app.crt"].existed is False

    restored = rf.restore(session, "rot-1")

    assert local_snapshot(certs) == before
    assert restored.removed == [f"{certs}/client.app.crt"]
    assert sorted(restored.restored) == sorted(f"{certs}/{n}" for n in ("ca.crt", "node.crt", "node.key"))
    assert temps_in(certs) == []
    assert rf.restore(session, "rot-1").restored == []  # restoring twice changes nothing


def test_a_backup_killed_before_its_manifest_keeps_the_copies_of_the_originals(session, certs):
    """The manifest is written once, after every file is copied: a run killed before it has copies
    but no record of them. The next try must take the copies (the originals), not the files as
    they are by then, so that rollback still gives back what the node had."""
    (certs / "node.crt").write_bytes(b"old node cert\n")
    (certs / "node.key").write_bytes(b"old node key\n")
    paths = [f"{certs}/node.key", f"{certs}/node.crt"]
    rf.backup_files(session, paths, "rot-2")
    backup = certs / ".certrotate-backup" / "rot-2"
    (backup / rf.MANIFEST_NAME).unlink()  # as if killed between the copies and the manifest
    (certs / "node.crt").write_bytes(b"changed since\n")

    manifest = rf.backup_files(session, paths, "rot-2")

    assert sorted(manifest.entries) == sorted(paths)
    assert manifest.entries[f"{certs}/node.crt"].sha256 == hashlib.sha256(b"old node cert\n").hexdigest()
    rf.restore(session, "rot-2")
    assert (certs / "node.crt").read_bytes() == b"old node cert\n"


def test_restore_without_backup_is_a_sentence(session):
    with pytest.raises(StepFailed, match="no backup of rotation nope"):
        rf.restore(session, "nope")


# -- host keys ------------------------------------------------------------------------------


def test_unknown_host_yields_ssh_keygen_fingerprint_and_can_be_trusted(hosts, pool, certs):
    known_hosts = certs / "known_hosts"
    known_hosts.write_text("# operator's own comment\nother.example ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGaW/7y4u0BdD4B0Cw2KuZ6N6t7SNdGQ5V0Ud/1Xx3zK")
    session = pool.session(hosts.target(hosts.root, certs, known_hosts=str(known_hosts)))

    with pytest.raises(UnknownHostKey) as unknown:
        rf.list_dir(session, str(certs))

    keygen = subprocess.run(
        ["ssh-keygen", "-lf", f"{hosts.root.host_key_path}.pub"], capture_output=True, text=True, check=True
    )
    assert unknown.value.fingerprint == keygen.stdout.split()[1]
    assert unknown.value.fingerprint in str(unknown.value) and "n1" in str(unknown.value)
    assert unknown.value.host_key_name == f"[{hosts.root.address}]:{SSH_PORT}"

    unknown.value.trust()

    lines = known_hosts.read_text().splitlines()
    assert lines[:2] == [
        "# operator's own comment",
        "other.example ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGaW/7y4u0BdD4B0Cw2KuZ6N6t7SNdGQ5V0Ud/1Xx3zK",
    ]
    assert lines[2] == hosts.root.host_key_line()
    assert rf.list_dir(session, str(certs)) is not None


def test_changed_host_key_is_a_hard_stop(hosts, pool, certs):
    impostor = certs / "impostor_key"
    generate_ed25519_key(impostor, "impostor")
    impostor_line = Path(f"{impostor}.pub").read_text().split()
    known_hosts = certs / "known_hosts"
    known_hosts.write_text(f"[{hosts.root.address}]:{SSH_PORT} {impostor_line[0]} {impostor_line[1]}\n")
    (certs / "ca.crt").write_bytes(b"untouched")
    session = pool.session(hosts.target(hosts.root, certs, known_hosts=str(known_hosts)))

    with pytest.raises(HostKeyChanged) as changed:
        rf.upload(session, f"{certs}/ca.crt", b"never written")

    message = str(changed.value)
    assert "n1" in message and "CHANGED" in message
    assert hosts.root.host_key_fingerprint in message
    assert fingerprint(paramiko.PKey.from_path(impostor).asbytes()) in message
    assert (certs / "ca.crt").read_bytes() == b"untouched"
    with pytest.raises(HostKeyChanged):  # and recording cannot paper over it
        record_host_key(known_hosts, changed.value.host_key_name, changed.value.key)


def test_known_hosts_matching_rules(tmp_path):
    blob = "AAAAC3NzaC1lZDI1NTE5AAAAIGaW/7y4u0BdD4B0Cw2KuZ6N6t7SNdGQ5V0Ud/1Xx3zK"
    hashed = paramiko.HostKeys.hash_host("[10.0.0.7]:2222")
    path = tmp_path / "known_hosts"
    path.write_text(
        f"{hashed} ssh-ed25519 {blob}\n"
        f"*.example.com,!bad.example.com ssh-ed25519 {blob}\n"
        f"@cert-authority *.example.com ssh-ed25519 {blob}\n"
        "garbage line\n"
    )
    assert host_key_name("10.0.0.7", 22) == "10.0.0.7"
    assert host_key_name("10.0.0.7", 2222) == "[10.0.0.7]:2222"
    assert len(known_keys(path, "[10.0.0.7]:2222")) == 1
    assert known_keys(path, "10.0.0.7") == []
    assert len(known_keys(path, "db1.example.com")) == 1
    assert known_keys(path, "bad.example.com") == []
    assert preferred_host_key_types(known_keys(path, "db1.example.com"), ("rsa-sha2-512", "ssh-ed25519")) == [
        "ssh-ed25519",
        "rsa-sha2-512",
    ]
    pkey = paramiko.PKey.from_type_string("ssh-ed25519", __import__("base64").b64decode(blob))
    check_host_key(path, "db1", "db1.example.com", pkey)  # known: no exception


# -- unreachable, silent, slow ---------------------------------------------------------------


def test_stopped_sshd_fails_fast_naming_the_host(hosts, certs):
    gone = hosts.add("gone", 3)
    hosts.write_known_hosts()
    gone.stop()
    with SshPool(ssh_config=None, timeouts=Timeouts(connect=3, step=5), use_agent=False) as pool:
        session = pool.session(hosts.target(gone, certs))
        started = time.monotonic()
        with pytest.raises(HostUnreachable) as failure:
            rf.list_dir(session, str(certs))
    assert time.monotonic() - started < 5
    assert f"gone ({gone.address}:{SSH_PORT}) refused the SSH connection" in str(failure.value)


@contextlib.contextmanager
def silent_server(address: str):
    """Accepts TCP connections and never says a word (a wedged sshd, a wrong port)."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((address, 0))
    listener.listen(8)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept_forever():
        listener.settimeout(0.2)
        while not stop.is_set():
            with contextlib.suppress(OSError):
                accepted.append(listener.accept()[0])

    thread = threading.Thread(target=accept_forever, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join()
        for conn in accepted:
            conn.close()
        listener.close()


def test_silent_tcp_server_fails_within_banner_timeout(hosts, certs):
    address = f"{hosts.prefix}4"
    with silent_server(address) as port, SshPool(
        ssh_config=None, timeouts=Timeouts(banner=1.5, step=30), use_agent=False
    ) as pool:
        session = pool.session(SshTarget("n4", address, port, "root", str(hosts.operator_key), str(hosts.known_hosts)))
        started = time.monotonic()
        with pytest.raises(HostUnreachable) as failure:
            session.run("true")
        elapsed = time.monotonic() - started
    assert 1.4 <= elapsed < 6
    assert f"n4 ({address}:{port}) accepted the connection but sent no SSH banner within 1.5 s" in str(failure.value)


def test_step_deadline_names_the_host(hosts, certs):
    address = f"{hosts.prefix}4"
    with silent_server(address) as port, SshPool(
        ssh_config=None, timeouts=Timeouts(banner=60, step=2), use_agent=False
    ) as pool:
        session = pool.session(SshTarget("n4", address, port, "root", str(hosts.operator_key), str(hosts.known_hosts)))
        started = time.monotonic()
        with pytest.raises(HostTimeout) as failure:
            rf.upload(session, "/tmp/never", b"x")
        elapsed = time.monotonic() - started
    assert elapsed < 5
    assert str(failure.value).startswith(f"n4 ({address}:{port}) did not answer within 2 s")


def test_slow_command_times_out_and_the_session_recovers(session):
    started = time.monotonic()
    with pytest.raises(HostTimeout, match=r"^n1 \(.*\) did not answer within 1 s"):
        session.run("sleep 30", timeout=1)
    assert time.monotonic() - started < 4
    assert session.run("echo back").stdout == "back\n"


# -- commands and reload ---------------------------------------------------------------------


def test_run_captures_status_and_output(session):
    result = session.run("echo out; echo err >&2; exit 3")

    assert (result.exit_status, result.stdout, result.stderr, result.host) == (3, "out\n", "err\n", "n1")
    assert not result.ok


def test_reload_of_a_process_that_is_not_running_is_one_sentence(session):
    with pytest.raises(StepFailed) as pkill_failure:
        session.reload("pkill -HUP -x crnosuchd")
    with pytest.raises(StepFailed) as kill_failure:
        session.reload("kill -HUP 2147480000")

    assert str(pkill_failure.value).startswith("reload on n1 failed: no process to signal (`pkill -HUP")
    assert str(kill_failure.value).startswith("reload on n1 failed: no process to signal (`kill -HUP 2147480000` exited 1:")
    assert "No such process" in str(kill_failure.value)


def test_reload_of_a_running_process_returns_its_result(session, certs):
    # SIGHUP's default action, even when the test run inherited it ignored (nohup, some CI runners)
    sleeper = subprocess.Popen(["sleep", "60"], start_new_session=True,
                               preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_DFL))
    try:
        result = session.reload(f"kill -HUP {sleeper.pid}")
        assert result.ok and result.exit_status == 0
        assert sleeper.wait(timeout=5) == -1  # SIGHUP ends `sleep`, proving the signal arrived
    finally:
        if sleeper.poll() is None:
            sleeper.kill()
            sleeper.wait()


def test_other_reload_failures_name_the_exit_status(session):
    with pytest.raises(StepFailed, match=r"^reload on n1 failed: `echo broken >&2; exit 4` exited 4: broken;"):
        session.reload("echo broken >&2; exit 4")
    assert not no_process_to_signal(
        type("R", (), {"stdout": "", "stderr": "", "exit_status": 1, "command": "systemctl reload x"})()
    )


# -- connections ----------------------------------------------------------------------------


def test_one_connection_per_host_and_one_sftp_client_per_thread(hosts, pool, certs):
    session = pool.session(hosts.target(hosts.root, certs))
    assert pool.session(hosts.target(hosts.root, certs)) is session
    rf.upload(session, f"{certs}/ca.crt", b"bundle")
    transport = session.transport()
    clients = {}

    def use_sftp(name):
        rf.read_file(session, f"{certs}/ca.crt")
        clients[name] = session.sftp()

    threads = [threading.Thread(target=use_sftp, args=(n,)) for n in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert session.transport() is transport
    assert clients["a"] is not clients["b"]
    assert clients["a"].get_channel().get_transport() is transport


def test_requests_are_sent_at_once_not_held_for_the_peers_ack(hosts, pool, certs):
    """Nagle's algorithm off on the connection: with it on, an SFTP request or a channel open sent while the
    previous message is unacknowledged waits for the host's delayed ACK (40 ms on Linux, each time)."""
    session = pool.session(hosts.target(hosts.root, certs))
    sock = session.transport().sock
    assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0


def test_wrong_key_is_refused_with_a_sentence(hosts, pool, certs):
    stranger = certs / "stranger"
    generate_ed25519_key(stranger, "stranger")
    session = pool.session(hosts.target(hosts.root, certs, ssh_key=str(stranger)))
    with pytest.raises(LoginRefused, match=r"^n1 \(.*\) refused login as .* with .*stranger; check ssh_user and ssh_key"):
        session.run("true")


def test_ssh_config_alias_and_proxy_jump(hosts, certs):
    bastion = next((s for s in hosts.servers if s.name == "bastion"), None) or hosts.add(
        "bastion", 5, cls=ForwardingSshServer
    )
    hosts.write_known_hosts()
    user = "root" if is_root() else os.environ.get("USER", "")
    config = certs / "ssh_config"
    config.write_text(
        f"Host jump\n  HostName {bastion.address}\n  Port {SSH_PORT}\n  User {user}\n  IdentityFile {hosts.operator_key}\n\n"
        f"Host db1\n  HostName {hosts.root.address}\n  Port {SSH_PORT}\n  User {user}\n"
        f"  IdentityFile {hosts.operator_key}\n  ProxyJump jump\n"
    )
    endpoint = resolve_endpoint("db1", paramiko.SSHConfig.from_path(config))
    assert (endpoint.hostname, endpoint.port, endpoint.user, endpoint.proxy_jump) == (
        hosts.root.address,
        SSH_PORT,
        user,
        "jump",
    )
    # The inventory fills in ssh_port = 22 when it is absent; the config's Port still applies then.
    assert resolve_endpoint("db1", paramiko.SSHConfig.from_path(config), port=22).port == SSH_PORT
    assert resolve_endpoint("db1", paramiko.SSHConfig.from_path(config), port=2200, user="x").user == "x"
    with SshPool(ssh_config=config, known_hosts=hosts.known_hosts, use_agent=False) as pool:
        session = pool.session({"name": "db1", "ssh_host": "db1", "certs_dir": str(certs)})
        result = session.run("echo via bastion")
        assert result.stdout == "via bastion\n"
        assert session.via is not None and session.via.transport().is_active()
    assert "Accepted publickey" in bastion.log_path.read_text()


# -- a real PostgreSQL node of the lab -------------------------------------------------------


def served_certificate(address: str, port: int) -> bytes:
    """DER of the certificate PostgreSQL serves after an SSLRequest."""
    import ssl
    import struct

    with socket.create_connection((address, port), timeout=5) as raw:
        raw.sendall(struct.pack("!ii", 8, 80877103))
        assert raw.recv(1) == b"S"
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        with context.wrap_socket(raw) as tls:
            return tls.getpeercert(binary_form=True)


def state_nodes(lab) -> list[dict]:
    import tomllib

    return tomllib.loads(lab.state_path.read_text())["nodes"]


def test_pair_rotation_reload_and_restore_on_a_real_postgres_node(lab_factory):
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    from core import pki

    lab = lab_factory(nodes=1)
    node = state_nodes(lab)[0]
    lab_node = lab.nodes[0]
    certs = lab_node.certs_dir
    before = local_snapshot(certs)
    issued = pki.issue_node(lab.ca, lab_node.addresses)
    new_der = x509.load_pem_x509_certificate(issued.cert_pem).public_bytes(Encoding.DER)
    with SshPool(ssh_config=None, use_agent=False) as pool:
        session = pool.session(node, base_dir=lab.operator_dir)

        rf.upload_pair(
            session,
            rf.RemoteFile(f"{certs}/node.crt", issued.cert_pem),
            rf.RemoteFile(f"{certs}/node.key", issued.key_pem()),
            rotation_id="rot-pg",
        )
        key_info = (certs / "node.key").stat()
        assert (key_info.st_mode & 0o777, key_info.st_uid) == (0o600, before["node.key"][2])
        assert session.reload(node["reload"]).ok
        deadline = time.monotonic() + 10
        while served_certificate(lab_node.address, lab_node.sql_port) != new_der:
            assert time.monotonic() < deadline, "PostgreSQL did not pick up the new node.crt after SIGHUP"
            time.sleep(0.05)
        with lab.connect_sql(lab_node) as conn:
            assert conn.execute("select 1").fetchone() == (1,)

        rf.restore(session, "rot-pg")
        assert local_snapshot(certs) == before

        lab_node.stop_postgres()
        with pytest.raises(StepFailed, match=r"^reload on n1 failed: no process to signal \("):
            session.reload(node["reload"])


def test_login_with_an_ssh_agent_key_when_no_ssh_key_is_given(hosts, certs, monkeypatch):
    socket_path = certs / "agent.sock"
    agent = subprocess.Popen(["ssh-agent", "-D", "-a", str(socket_path)], stdout=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 5
        while not socket_path.exists():
            assert time.monotonic() < deadline, "ssh-agent did not create its socket"
            time.sleep(0.02)
        env = {**os.environ, "SSH_AUTH_SOCK": str(socket_path)}
        subprocess.run(["ssh-add", "-q", str(hosts.operator_key)], env=env, check=True, capture_output=True)
        monkeypatch.setenv("SSH_AUTH_SOCK", str(socket_path))
        monkeypatch.setenv("HOME", str(certs))  # no ~/.ssh/id_* to fall back on
        with SshPool(ssh_config=None, known_hosts=hosts.known_hosts) as pool:
            session = pool.session(hosts.target(hosts.root, certs, ssh_key=None, known_hosts=None))
            assert session.run("echo agent").stdout == "agent\n"
    finally:
        agent.terminate()
        agent.wait(timeout=5)


def test_bundle_rollout_to_every_lab_node_from_threads_shares_one_pool(lab):
    from concurrent.futures import ThreadPoolExecutor

    bundle = lab.ca.cert_pem + b"\n" + lab.ca.cert_pem  # stands in for new CA + old CA
    nodes = state_nodes(lab)
    with SshPool(ssh_config=None, use_agent=False) as pool:

        def roll_out(node: dict) -> str:
            session = pool.session(node, base_dir=lab.operator_dir)
            uploaded = rf.upload(session, f"{node['certs_dir']}/ca.crt", bundle, rotation_id="rot-threads")
            session.reload(node["reload"])
            return uploaded.sha256

        with ThreadPoolExecutor(max_workers=3) as executor:
            hashes = list(executor.map(roll_out, nodes))

        assert hashes == [sha(bundle)] * 3
        for lab_node in lab.nodes:
            assert (lab_node.certs_dir / "ca.crt").read_bytes() == bundle
            with lab.connect_sql(lab_node) as conn:
                assert conn.execute("select 1").fetchone() == (1,)
        assert len({id(pool.session(node, base_dir=lab.operator_dir)) for node in nodes}) == 3
