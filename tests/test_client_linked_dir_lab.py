"""A client whose certs dir is a symlink to a directory (the certbot live/archive layout), on a real lab.

The rotation must write each new set into a new versioned directory and swap the link, so
that a reader resolving the link sees a complete old set or a complete new one; rollback
must point the link back; the end of the rotation removes the versions certrotate made.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path

import pytest
from cryptography import x509

from core.errors import StepFailed
from core.lab.cluster import OPERATOR_KEY
from core.pki import sha256_fingerprint
from core.pki.keys import key_matches_certificate, load_private_key
from core.remote import versioned_dirs
from core.remote.remote_files import RemoteFile
from core.remote.ssh import SshPool, SshTarget, Timeouts
from tests.rotation_support import FUTURE, LiveClient, certrotate, certs_in, lab_with_restarting_client

pytestmark = pytest.mark.lab

FILES = ("ca.crt", "client.app.crt", "client.app.key")


def _snapshot(directory: Path) -> dict[str, tuple[bytes, int]]:
    return {p.name: (p.read_bytes(), p.stat().st_mode & 0o7777) for p in directory.iterdir() if p.is_file()}


class LinkReader:
    """An application that resolves the link once per read (it opens the directory, then each file in it),
    over and over while the rotation runs; it records every pair it saw that does not match."""

    def __init__(self, link: Path):
        self.link = link
        self.mixed: list[str] = []
        self.reads = 0
        self.versions: dict[int, tuple[str, ...]] = {}  # directory inode -> sha256 of the files read there
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _read_once(self) -> None:
        directory = os.open(self.link, os.O_RDONLY | os.O_DIRECTORY)
        try:
            contents = {}
            for name in FILES:
                fd = os.open(name, os.O_RDONLY, dir_fd=directory)
                with os.fdopen(fd, "rb") as handle:
                    contents[name] = handle.read()
            inode = os.fstat(directory).st_ino
        finally:
            os.close(directory)
        cert = x509.load_pem_x509_certificate(contents["client.app.crt"])
        key = load_private_key(contents["client.app.key"], "client.app.key")
        if not key_matches_certificate(key, cert.public_key()):
            self.mixed.append(f"key and certificate {sha256_fingerprint(cert)[:16]} do not match")
        issuers = {c.subject for c in x509.load_pem_x509_certificates(contents["ca.crt"])}
        if cert.issuer not in issuers:
            self.mixed.append(f"ca.crt does not hold the issuer of {sha256_fingerprint(cert)[:16]}")
        digest = tuple(hashlib.sha256(contents[name]).hexdigest() for name in FILES)
        if self.versions.setdefault(inode, digest) != digest:
            self.mixed.append(f"the files of directory inode {inode} changed under the link")
        self.reads += 1

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._read_once()
            except (OSError, ValueError) as error:
                self.mixed.append(f"{type(error).__name__}: {error}")

    def __enter__(self) -> LinkReader:
        self._read_once()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(30)


@pytest.fixture
def linked(lab_factory):
    """Two nodes and an SSH client `app` (restarted by touching a marker) whose certs dir is
    certs -> archive/certs.1."""
    lab, marker = lab_with_restarting_client(lab_factory, 2)
    version = lab.client_host("app").link_certs_dir()
    return lab, marker, version


def test_a_ca_rotation_swaps_the_link_and_no_reader_sees_a_mix(linked):
    lab, marker, first = linked
    link = lab.client_host("app").certs_dir
    archive = first.parent
    before = _snapshot(first)
    first_mode = first.stat().st_mode & 0o7777

    with LinkReader(link) as reader, LiveClient(lab, link, "app", marker) as client:
        assert certrotate(lab, "start", "ca").returncode == 0
        trust = certrotate(lab, "advance")
        assert trust.returncode == 0, trust.stderr + trust.stdout
        rid = json.loads(certrotate(lab, "status", "--json").stdout)["rotation_id"]
        assert os.readlink(link) == f"archive/certs.{rid}.trust"
        assert f"{link} now points to archive/certs.{rid}.trust (was archive/certs.1)" in trust.stdout
        rest = certrotate(lab, "advance", "--now", FUTURE, "--yes")
        assert rest.returncode == 0, rest.stderr + rest.stdout
        assert "rotation finished" in rest.stdout

    # Every read through the link found a matching key, certificate and CA; it saw the old set and new ones.
    assert reader.mixed == []
    assert reader.reads > 50 and len(reader.versions) >= 3
    assert client.failures == [] and client.ok > 20

    # The link names the retire step's version; the intermediate versions are gone, the first one is untouched.
    current = os.readlink(link)
    assert current == f"archive/certs.{rid}.retire"
    assert sorted(p.name for p in archive.iterdir()) == sorted(["certs.1", f"certs.{rid}.retire"])
    assert _snapshot(first) == before
    new = archive / f"certs.{rid}.retire"
    assert new.stat().st_mode & 0o7777 == first_mode and new.stat().st_uid == first.stat().st_uid

    # Every file is right: the new CA alone, a new client certificate from it, its key 0600, nothing else lost.
    new_ca = certs_in(lab.local_certs_dir / "ca.crt")
    assert certs_in(link / "ca.crt") == new_ca
    cert = certs_in(link / "client.app.crt")[0]
    cert.verify_directly_issued_by(new_ca[0])
    assert key_matches_certificate(load_private_key((link / "client.app.key").read_bytes(), "key"), cert.public_key())
    assert (link / "client.app.key").stat().st_mode & 0o7777 == 0o600
    assert set(before) <= {p.name for p in link.iterdir() if p.is_file()}
    assert not list(link.glob(".certrotate-*.tmp")) and not list(link.parent.glob(".certrotate-*.tmp"))
    assert f"kept {first}, which {link} pointed to before and certrotate did not make" in rest.stdout


def test_rollback_points_the_link_back_at_the_set_from_before(lab_factory, tmp_path):
    """Trust and leaf both swapped the link; the rollback walks it back and removes both new versions."""
    lab = lab_factory(1, clients=("app",), ssh_clients=("app",))
    host = lab.client_host("app")
    first = host.link_certs_dir()
    before = _snapshot(first)
    empty = tmp_path / "bin"
    empty.mkdir()
    host.sshd.stop()
    host.sshd.session_env = {"PATH": str(empty)}  # no openssl: retire then waits for a confirmation
    host.sshd.start()

    assert certrotate(lab, "start", "ca").returncode == 0
    assert certrotate(lab, "advance").returncode == 0
    leaf = certrotate(lab, "advance", "--now", FUTURE)
    assert leaf.returncode == 0 and "waiting for confirmation" in leaf.stdout, leaf.stderr + leaf.stdout
    rid = json.loads(certrotate(lab, "status", "--json").stdout)["rotation_id"]
    assert os.readlink(host.certs_dir) == f"archive/certs.{rid}.leaf"
    assert (host.certs_dir / "client.app.crt").read_bytes() != before["client.app.crt"][0]

    result = certrotate(lab, "rollback", "--yes")
    assert result.returncode == 0, result.stderr + result.stdout
    assert os.readlink(host.certs_dir) == "archive/certs.1"
    assert _snapshot(host.certs_dir) == before
    assert sorted(p.name for p in first.parent.iterdir()) == ["certs.1"]
    status = json.loads(certrotate(lab, "status", "--json").stdout)
    assert status["phase"] == "idle" and status["history"][-1]["outcome"] == "rolled back"


def test_a_directory_inside_the_linked_certs_dir_stops_the_step_before_anything_changes(lab_factory):
    lab = lab_factory(1, clients=("app",), ssh_clients=("app",))
    host = lab.client_host("app")
    first = host.link_certs_dir()
    (first / "old").mkdir()
    before = _snapshot(first)

    assert certrotate(lab, "start", "clients").returncode == 0
    result = certrotate(lab, "advance", "--yes")
    assert result.returncode == 1
    assert f"{first}/old is a dir" in result.stderr and "move it out" in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert os.readlink(host.certs_dir) == "archive/certs.1" and _snapshot(first) == before
    assert sorted(p.name for p in first.parent.iterdir()) == ["certs.1"]


def test_a_failure_before_the_swap_removes_the_new_version_and_leaves_the_link(lab_factory, monkeypatch):
    """Real SFTP to the lab's client host; the step breaks after the new version is written, just before the swap."""
    lab = lab_factory(1, clients=("app",), ssh_clients=("app",))
    host = lab.client_host("app")
    first = host.link_certs_dir()
    before = _snapshot(first)

    def fail(*_args):
        raise StepFailed("the disk went away")

    monkeypatch.setattr(versioned_dirs, "_point_link", fail)
    target = SshTarget("client-app", host.address, host.ssh_port, lab.ssh_user, str(lab.operator_dir / OPERATOR_KEY),
                       str(lab.operator_dir / "known_hosts"), str(host.certs_dir))
    with SshPool(ssh_config=None, timeouts=Timeouts(step=30), use_agent=False) as pool:
        session = pool.session(target)
        new_key = RemoteFile(f"{host.certs_dir}/client.app.key", b"not a real key\n", 0o600)
        with pytest.raises(StepFailed, match="the disk went away"):
            versioned_dirs.deliver_new_version(session, str(host.certs_dir), [new_key], version_id="r1.leaf")
        assert os.readlink(host.certs_dir) == "archive/certs.1" and _snapshot(first) == before
        assert sorted(p.name for p in first.parent.iterdir()) == ["certs.1"]
        monkeypatch.undo()
        swapped = versioned_dirs.deliver_new_version(session, str(host.certs_dir), [new_key], version_id="r1.leaf")
        assert swapped.current == "archive/certs.r1.leaf" and swapped.previous == "archive/certs.1"
        assert versioned_dirs.restore_previous(session, str(host.certs_dir), "r1.leaf") == ["archive/certs.1"]
        cleanup = versioned_dirs.remove_superseded(session, str(host.certs_dir))
    assert os.readlink(host.certs_dir) == "archive/certs.1" and _snapshot(first) == before
    assert cleanup.removed == [f"{first.parent}/certs.r1.leaf"]
    assert sorted(p.name for p in first.parent.iterdir()) == ["certs.1"]
