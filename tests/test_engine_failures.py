"""What an operator meets when things go wrong mid-rotation, on a real cluster."""

import json
import os
import signal
import subprocess
import threading
import time

import pytest

from core.pki import sha256_fingerprint
from tests.rotation_support import (
    CERTROTATE,
    FUTURE,
    certrotate,
    certs_in,
    edit_inventory,
    node_files,
    served,
    set_node_reload,
)

pytestmark = pytest.mark.lab


def short_verify(data):
    data["cluster"]["verify_timeout_seconds"] = 3


@pytest.fixture
def lab3(lab_factory):
    lab = lab_factory(3, ssh_clients=("app",))
    edit_inventory(lab, short_verify)
    return lab


def phase(lab):
    return json.loads(certrotate(lab, "status", "--json").stdout)


def test_unreachable_node_fails_naming_it_and_finishes_once_back(lab3):
    lab = lab3
    down = lab.node("n2")
    down.stop_sshd()
    assert certrotate(lab, "start", "ca").returncode == 0
    result = certrotate(lab, "advance")
    assert result.returncode == 1
    assert "n2" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    status = phase(lab)
    assert status["phase"] == "trust"
    assert status["nodes"]["n1"]["trust"] == "done" and status["nodes"]["n3"]["trust"] == "done"
    assert "trust" not in status["nodes"]["n2"]
    new_ca = certs_in(lab.local_certs_dir / "rotations" / status["rotation_id"] / "ca.crt")[0]
    assert certs_in(lab.node("n1").certs_dir / "ca.crt")[0] == new_ca
    assert certs_in(down.certs_dir / "ca.crt")[0] != new_ca  # untouched while down
    down.start_sshd()
    again = certrotate(lab, "advance")
    assert again.returncode == 0, again.stderr
    assert phase(lab)["phase"] == "wait"
    assert certs_in(down.certs_dir / "ca.crt")[0] == new_ca


def test_node_that_keeps_its_old_certificate_is_restored_and_the_rotation_stops(lab3):
    lab = lab3
    n2 = lab.node("n2")
    served_before = sha256_fingerprint(served(lab, n2))
    assert certrotate(lab, "start", "ca").returncode == 0
    assert certrotate(lab, "advance").returncode == 0
    files_before_leaf = node_files(lab)["n2"]
    set_node_reload(lab, "n2", "true")  # exits 0 but signals nothing: n2 keeps its old certificate
    result = certrotate(lab, "advance", "--now", FUTURE, "--yes")
    assert result.returncode == 1
    assert "n2" in result.stderr and "restored" in result.stderr and "stopped" in result.stderr
    assert sha256_fingerprint(served(lab, n2)) == served_before
    after = node_files(lab)["n2"]
    for name in ("ca.crt", "node.crt", "node.key"):
        assert after[name] == files_before_leaf[name]
    status = phase(lab)
    assert status["phase"] == "leaf" and status["nodes"]["n1"]["leaf"] == "done"
    assert status["nodes"]["n2"]["leaf"] == "failed" and "leaf" not in status["nodes"]["n3"]
    assert "n2" in status["last_error"]
    for node in lab.nodes:
        set_node_reload(lab, node.name, node.reload_command)
    done = certrotate(lab, "advance", "--now", FUTURE, "--yes")
    assert done.returncode == 0, done.stderr
    assert phase(lab)["phase"] == "idle"


def test_rollback_mid_rotation_restores_every_host(lab3):
    lab = lab3
    before = node_files(lab)
    client_dir = lab.client_host("app").certs_dir
    client_before = {p.name: p.read_bytes() for p in client_dir.iterdir() if p.is_file()}
    local_bundle = (lab.local_certs_dir / "ca.crt").read_bytes()
    served_before = {n.name: sha256_fingerprint(served(lab, n)) for n in lab.nodes}
    assert certrotate(lab, "start", "ca").returncode == 0
    assert certrotate(lab, "advance").returncode == 0
    set_node_reload(lab, "n3", "true")
    assert certrotate(lab, "advance", "--now", FUTURE, "--yes").returncode == 1  # n1, n2 rotated; n3 stopped
    assert sha256_fingerprint(served(lab, lab.node("n1"))) != served_before["n1"]
    for node in lab.nodes:
        set_node_reload(lab, node.name, node.reload_command)

    result = certrotate(lab, "rollback", "--yes")
    assert result.returncode == 0, result.stderr + result.stdout
    after = node_files(lab)
    for node in lab.nodes:
        for name in ("ca.crt", "node.crt", "node.key"):
            assert after[node.name][name] == before[node.name][name], (node.name, name)
        assert sha256_fingerprint(served(lab, node)) == served_before[node.name]
    assert {p.name: p.read_bytes() for p in client_dir.iterdir() if p.is_file() and p.name != "restarted"} == client_before
    assert (lab.local_certs_dir / "ca.crt").read_bytes() == local_bundle
    status = phase(lab)
    assert status["phase"] == "idle" and status["history"][-1]["outcome"] == "rolled back"


def test_rollback_with_nothing_in_flight_is_one_sentence(lab3):
    result = certrotate(lab3, "rollback", "--yes")
    assert result.returncode == 2 and "nothing to roll back" in result.stderr


def test_second_process_on_the_same_state_exits_3(lab3):
    from core.config import state as state_mod
    with state_mod.locked(lab3.state_path):
        result = certrotate(lab3, "advance")
    assert result.returncode == 3 and f"pid {os.getpid()}" in result.stderr


def final_invariants(lab):
    """What any finished rotation must leave: same layout and trust on every node."""
    new_ca = certs_in(lab.local_certs_dir / "ca.crt")
    assert len(new_ca) == 1
    for node in lab.nodes:
        files = node_files(lab)[node.name]
        assert sorted(name for name in files) == ["ca.crt", "node.crt", "node.key"], files
        assert certs_in(node.certs_dir / "ca.crt") == new_ca
        leaf = served(lab, node)
        assert certs_in(node.certs_dir / "node.crt")[0] == leaf
        leaf.verify_directly_issued_by(new_ca[0])
        assert oct((node.certs_dir / "node.key").stat().st_mode & 0o777) == "0o600"
        assert (node.certs_dir / "node.key").stat().st_uid == lab.node("n1").certs_dir.stat().st_uid


def test_sigkill_at_every_save_then_rerun_converges(lab_factory):
    lab = lab_factory(2, ssh_clients=("app",))
    edit_inventory(lab, short_verify)
    assert certrotate(lab, "start", "ca").returncode == 0
    kills = 0
    for _ in range(200):
        before = certrotate(lab, "advance", "--now", FUTURE, "--yes", env={"CERTROTATE_CRASH_AT": "save:1:before"})
        after = certrotate(lab, "advance", "--now", FUTURE, "--yes", env={"CERTROTATE_CRASH_AT": "save:1:after"})
        kills += (before.returncode == -signal.SIGKILL) + (after.returncode == -signal.SIGKILL)
        assert before.returncode in (0, -signal.SIGKILL), before.stderr
        assert after.returncode in (0, -signal.SIGKILL), after.stderr
        if phase(lab)["phase"] == "idle":
            break
    assert phase(lab)["phase"] == "idle"
    assert kills >= 20  # every save point of the rotation was hit, before and after
    final_invariants(lab)


def test_sigkill_mid_upload_then_rerun_converges(lab_factory):
    """Killed in the middle of an upload: the node holds the new temps and its old files, nothing renamed."""
    lab = lab_factory(2)
    edit_inventory(lab, short_verify)
    assert certrotate(lab, "start", "ca").returncode == 0
    before = {node.name: (node.certs_dir / "ca.crt").read_bytes() for node in lab.nodes}
    process = certrotate(lab, "advance", env={"CERTROTATE_CRASH_AT": "upload:1:before"})
    assert any(p.name.startswith(".certrotate-") and p.name.endswith(".tmp")
               for node in lab.nodes for p in node.certs_dir.iterdir())
    assert any((node.certs_dir / "ca.crt").read_bytes() == before[node.name] for node in lab.nodes)
    assert process.returncode == -signal.SIGKILL
    rerun = certrotate(lab, "advance")
    assert rerun.returncode == 0, rerun.stderr
    for node in lab.nodes:
        assert not [p for p in node.certs_dir.iterdir() if p.name.endswith(".tmp")]
    assert certrotate(lab, "advance", "--now", FUTURE, "--yes").returncode == 0
    final_invariants(lab)
