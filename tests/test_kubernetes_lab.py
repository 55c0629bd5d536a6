"""Kubernetes delivery verified against real nodes: lab PostgreSQL servers stand in for the pods.

The operator "applies" a manifest the way the Secret reaches a pod: its decoded files land in
the node's certs dir, and the restart is a SIGHUP. certrotate never logs in to the nodes (their
SSH fields are removed); it only probes their sql_addr after each confirmation.
"""

from __future__ import annotations

import pytest

from core.config.state import load
from core.lab.postgres import connect_tls
from core.remote.probes import probe_sql
from core.rotation import kubernetes_manifests as k8s
from tests.kubernetes_support import FUTURE, run_cli
from tests.rotation_support import certs_in, edit_inventory

pytestmark = pytest.mark.lab


def as_kubernetes(data):
    data["cluster"].update({"delivery": "kubernetes", "verify_timeout_seconds": 3})
    for node in data["nodes"]:
        for key in ("ssh_host", "ssh_port", "ssh_user", "ssh_key", "known_hosts", "certs_dir", "reload"):
            node.pop(key, None)
        node["region"] = "a"


def apply(lab, state_path, step_file: str, nodes) -> None:
    """What `kubectl patch` + a rolling restart do to a pod: the Secret's files change, the server restarts."""
    [directory] = (state_path.parent / "certs" / "kubernetes").iterdir()
    secret = k8s.decode_manifest((directory / step_file).read_bytes())
    for node in nodes:
        node.install_files(secret)
        node.reload()


def gate_record(state_path, step: str) -> str:
    return load(state_path).rotation["kubernetes"]["a"][step]


def test_each_confirmation_is_verified_and_a_node_left_out_keeps_the_gate_open(lab_factory):
    lab = lab_factory(2)
    edit_inventory(lab, as_kubernetes)
    n1, n2 = lab.nodes
    state = lab.state_path
    served_before = {n.name: probe_sql(n.sql_addr).fingerprint for n in lab.nodes}

    assert run_cli(state, "start", "ca").returncode == 0
    assert "add in region a" in run_cli(state, "advance").stdout
    apply(lab, state, "01-add-a.yaml", [n1])                     # n2 forgotten
    missed = run_cli(state, "advance", "--yes")
    assert missed.returncode == 1 and "Traceback" not in missed.stderr
    assert "n2 does not accept client certificates of CA" in missed.stderr and "gate stays open" in missed.stderr
    assert gate_record(state, "add") == "written"                # the gate did not pass
    assert load(state).rotation["nodes"].get("n1", {}).get("trust") is None

    apply(lab, state, "01-add-a.yaml", [n2])
    trusted = run_cli(state, "advance", "--yes")
    assert trusted.returncode == 0, trusted.stderr
    assert gate_record(state, "add") == "done" and load(state).phase == "wait"
    assert {n.name: probe_sql(n.sql_addr).fingerprint for n in lab.nodes} == served_before

    assert "promote in region a" in run_cli(state, "advance", "--yes", "--now", FUTURE).stdout
    apply(lab, state, "02-promote-a.yaml", [n1])
    missed = run_cli(state, "advance", "--yes", "--now", FUTURE)
    assert missed.returncode == 1 and f"n2 serves certificate {served_before['n2'][:16]}" in missed.stderr
    assert gate_record(state, "promote") == "written"

    apply(lab, state, "02-promote-a.yaml", [n2])
    promoted = run_cli(state, "advance", "--yes", "--now", FUTURE)
    assert promoted.returncode == 0 and "remove in region a" in promoted.stdout, promoted.stderr
    leaf = probe_sql(n1.sql_addr).fingerprint
    assert probe_sql(n2.sql_addr).fingerprint == leaf != served_before["n1"]  # one certificate for the region

    apply(lab, state, "03-remove-a.yaml", [n1, n2])
    done = run_cli(state, "advance", "--yes", "--now", FUTURE)
    assert done.returncode == 0 and "rotation finished" in done.stdout, done.stderr

    [new_ca] = certs_in(lab.local_certs_dir / "ca.crt")
    export = lab.local_certs_dir / "export" / "root"
    for node in lab.nodes:
        assert certs_in(node.certs_dir / "ca.crt") == [new_ca]
        probe_sql(node.sql_addr).leaf.verify_directly_issued_by(new_ca)
        with connect_tls(node.address, export, "root", port=node.sql_port) as conn:  # verify-full, new client cert
            assert conn.execute("select current_user").fetchone()[0] == "root"
