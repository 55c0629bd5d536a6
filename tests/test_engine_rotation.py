"""A whole CA rotation on a real 3-node cluster, driven through the CLI like an operator would."""

import json

from pathlib import Path

import pytest

from core.pki import sha256_fingerprint
from tests.rotation_support import (
    FUTURE,
    LiveClient,
    certrotate,
    certs_in,
    lab_with_restarting_client,
    node_files,
    served,
)

pytestmark = pytest.mark.lab


@pytest.fixture
def cluster(lab_factory):
    return lab_with_restarting_client(lab_factory, 3)


def test_full_ca_rotation_with_zero_failed_connections(cluster):
    lab, marker = cluster
    old_ca = certs_in(lab.local_certs_dir / "ca.crt")[0]
    client_dir = lab.client_host("app").certs_dir
    old_client_cert = certs_in(client_dir / "client.app.crt")[0]

    with LiveClient(lab, client_dir, "app", marker) as client:
        assert certrotate(lab, "start", "ca").returncode == 0
        trust = certrotate(lab, "advance")
        assert trust.returncode == 0, trust.stderr
        assert "waiting until" in trust.stdout
        assert json.loads(certrotate(lab, "status", "--json").stdout)["phase"] == "wait"
        rest = certrotate(lab, "advance", "--now", FUTURE, "--yes")
        assert rest.returncode == 0, rest.stderr + rest.stdout
        assert "rotation finished" in rest.stdout

    assert client.failures == []
    assert client.ok > 30 and client.reloads >= 3

    status = json.loads(certrotate(lab, "status", "--json").stdout)
    assert status["phase"] == "idle" and status["history"][-1]["outcome"] == "done"
    new_ca = certs_in(lab.local_certs_dir / "ca.crt")
    assert len(new_ca) == 1 and sha256_fingerprint(new_ca[0]) != sha256_fingerprint(old_ca)
    for node in lab.nodes:
        bundle = certs_in(node.certs_dir / "ca.crt")
        assert [sha256_fingerprint(c) for c in bundle] == [sha256_fingerprint(new_ca[0])]
        leaf = served(lab, node)
        leaf.verify_directly_issued_by(new_ca[0])
        assert certs_in(node.certs_dir / "node.crt")[0] == leaf
        assert not (node.certs_dir / ".certrotate-backup").exists() or not any((node.certs_dir / ".certrotate-backup").iterdir())
    new_client_cert = certs_in(client_dir / "client.app.crt")[0]
    assert new_client_cert != old_client_cert
    new_client_cert.verify_directly_issued_by(new_ca[0])


def test_dry_run_changes_no_host_and_only_stages_the_rotations_files(cluster):
    """A preview changes no node and not the state file; on the operator's side it stages, under the
    rotation's own dir, what it shows (the preview then is what the run uses: tests/test_plan_contract.py)."""
    lab, _ = cluster
    assert certrotate(lab, "start", "ca").returncode == 0
    before_nodes = node_files(lab)
    before_state = lab.state_path.read_bytes()
    before_local = sorted(p.relative_to(lab.operator_dir) for p in lab.operator_dir.rglob("*"))
    result = certrotate(lab, "advance", "--dry-run")
    assert result.returncode == 0, result.stderr
    for node in lab.nodes:
        assert f"{node.name}:" in result.stdout
        assert f"write {node.certs_dir}/ca.crt" in result.stdout
        assert f"run `{node.reload_command}` (reload)" in result.stdout
    assert node_files(lab) == before_nodes
    assert lab.state_path.read_bytes() == before_state
    after_local = sorted(p.relative_to(lab.operator_dir) for p in lab.operator_dir.rglob("*"))
    staged = Path("certs") / "rotations"

    def outside_rotations(paths):
        return [p for p in paths if p.name != "certrotate.toml.lock" and staged not in p.parents and p != staged]

    assert outside_rotations(after_local) == outside_rotations(before_local)
    for key in (lab.operator_dir / staged).rglob("*.key"):
        assert key.stat().st_mode & 0o777 == 0o600
