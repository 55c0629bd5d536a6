"""Kubernetes delivery: the Secret manifests of each step, their order, and the CLI walking every gate.

No cluster: nodes without sql_addr are confirmed without verification (tests/test_kubernetes_lab.py
verifies against real PostgreSQL nodes). Where kubectl is installed, the manifests are fed to
the real `kubectl patch --local` as the operator's commands would feed them to the API server.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shutil
import stat
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml
from cryptography import x509

from core import files, pki
from core.config.inventory import parse_inventory
from core.config.state import load
from core.errors import BadInput
from core.pki import bundle
from core.rotation import kubernetes_manifests as k8s
from tests.kubernetes_support import FUTURE, TWO_REGIONS, run_cli, write_cluster

GATE = re.compile(r"waiting for confirmation: (\w+) in region (\w+)")


def fingerprints(pem: bytes) -> list[str]:
    return bundle.parse_bundle(pem, "test").fingerprints


def manifests(state_path: Path) -> dict[str, Path]:
    [directory] = (state_path.parent / "certs" / "kubernetes").iterdir()
    return {p.name: p for p in sorted(directory.glob("*.yaml"))}


def walk(state_path: Path) -> tuple[list[tuple[str, str]], str]:
    """advance --yes --now FUTURE until idle; the gates in the order they came, and everything printed."""
    gates, printed = [], ""
    for _ in range(12):
        result = run_cli(state_path, "advance", "--yes", "--now", FUTURE)
        assert result.returncode == 0, result.stderr
        printed += result.stdout + result.stderr
        gates += GATE.findall(result.stdout)
        if "rotation finished" in result.stdout:
            return gates, printed
    raise AssertionError("the rotation did not finish")


@pytest.fixture
def cluster(tmp_path) -> Path:
    return write_cluster(tmp_path)


def test_a_ca_rotation_goes_region_by_region_through_every_gate_to_idle(cluster):
    old_ca = x509.load_pem_x509_certificate((cluster.parent / "certs" / "ca.crt").read_bytes())
    assert run_cli(cluster, "start", "ca").returncode == 0
    first = run_cli(cluster, "advance")
    assert first.returncode == 0 and GATE.findall(first.stdout) == [("add", "eu")]
    again = run_cli(cluster, "advance")  # without --yes a written manifest is never taken as applied
    assert GATE.findall(again.stdout) == [("add", "eu")]
    assert "kubectl -n eu patch secret cockroachdb-node --type merge --patch-file" in again.stdout
    assert "kubectl -n eu rollout restart statefulset/cockroachdb" in again.stdout
    assert "kubectl -n eu rollout status statefulset/cockroachdb" in again.stdout

    gates, printed = walk(cluster)
    assert [("add", "eu")] + gates == [("add", "eu"), ("add", "us"), ("promote", "eu"), ("promote", "us"),
                                       ("remove", "eu"), ("remove", "us")]
    assert "kubectl -n us rollout restart statefulset/cockroachdb" in printed  # n3's namespace override

    state = load(cluster)
    assert state.phase == "idle" and state.history[-1]["outcome"] == "done"
    written = [(e["action"], e["host"]) for e in state.journal if e["action"].endswith("manifest written")]
    assert written == [(f"kubernetes {step}: manifest written", f"region {region}")
                       for step in ("add", "promote", "remove") for region in ("eu", "us")]
    confirmed = [e["host"] for e in state.journal if e["action"].endswith(": confirmed")]
    assert confirmed == ["region eu", "region us"] * 3

    files = manifests(cluster)
    assert list(files) == ["01-add-eu.yaml", "02-add-us.yaml", "03-promote-eu.yaml", "04-promote-us.yaml",
                           "05-remove-eu.yaml", "06-remove-us.yaml"]
    [new_ca] = x509.load_pem_x509_certificates((cluster.parent / "certs" / "ca.crt").read_bytes())
    old, new = pki.sha256_fingerprint(old_ca), pki.sha256_fingerprint(new_ca)
    for region in ("eu", "us"):
        add = k8s.decode_manifest(files[f"0{1 if region == 'eu' else 2}-add-{region}.yaml"].read_bytes())
        promote = k8s.decode_manifest(files[f"0{3 if region == 'eu' else 4}-promote-{region}.yaml"].read_bytes())
        remove = k8s.decode_manifest(files[f"0{5 if region == 'eu' else 6}-remove-{region}.yaml"].read_bytes())
        assert set(add) == {"ca.crt"} and fingerprints(add["ca.crt"]) == [old, new]
        assert set(promote) == {"ca.crt", "node.crt", "node.key"} and fingerprints(promote["ca.crt"]) == [new, old]
        assert set(remove) == {"ca.crt"} and fingerprints(remove["ca.crt"]) == [new]
        leaf = x509.load_pem_x509_certificate(promote["node.crt"])
        leaf.verify_directly_issued_by(new_ca)
        wanted = {a for n in TWO_REGIONS if n["region"] == region for a in n["addresses"]}
        assert set(pki.san_strings(leaf)) == wanted  # one certificate for the whole region, no other region's
    for name, path in files.items():
        private = "promote" in name
        assert stat.S_IMODE(path.stat().st_mode) == (0o600 if private else 0o644), name
    text = cluster.read_text()
    assert "PRIVATE KEY" not in text and "PRIVATE KEY" not in printed
    for path in files.values():
        secret = k8s.decode_manifest(path.read_bytes())
        if "node.key" in secret:
            encoded = base64.b64encode(secret["node.key"]).decode()
            assert encoded[:40] not in text and encoded[:40] not in printed
    for entry in state.journal:  # what the state file keeps of a manifest: its path and sha256
        if entry["action"].endswith("manifest written"):
            assert entry["sha256"] == hashlib.sha256((cluster.parent / entry["path"]).read_bytes()).hexdigest()


def test_each_manifest_is_a_secret_labelled_with_its_rotation_and_step(cluster):
    run_cli(cluster, "start", "ca")
    run_cli(cluster, "advance")
    [path] = manifests(cluster).values()
    document = yaml.safe_load(path.read_text())
    rotation = load(cluster).rotation
    assert document["apiVersion"] == "v1" and document["kind"] == "Secret" and document["type"] == "Opaque"
    assert document["metadata"]["name"] == "cockroachdb-node" and document["metadata"]["namespace"] == "eu"
    assert document["metadata"]["labels"] == {"app.kubernetes.io/managed-by": "certrotate",
                                              "certrotate/rotation-id": rotation["id"], "certrotate/step": "add"}
    record = rotation["kubernetes"]["eu"]
    assert record["add"] == "written" and record["add_manifest"] == f"certs/kubernetes/{rotation['id']}/01-add-eu.yaml"
    assert record["add_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl not installed")
def test_kubectl_patches_keep_what_the_secret_holds_and_end_with_the_new_ca_only(cluster, tmp_path):
    """The real kubectl applies each step's file as the operator's command does (`patch --local`: no server)."""
    in_cluster = tmp_path / "secret.yaml"
    in_cluster.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
        "metadata": {"name": "cockroachdb-node", "namespace": "eu"},
        "data": {"ca.crt": base64.b64encode((cluster.parent / "certs" / "ca.crt").read_bytes()).decode(),
                 "node.crt": base64.b64encode(b"the node certificate the cluster runs with").decode(),
                 "node.key": base64.b64encode(b"the key certrotate never saw").decode()},
    }))
    run_cli(cluster, "start", "ca")
    walk(cluster)
    seen = []
    for name, path in manifests(cluster).items():
        if not name.endswith("-eu.yaml"):
            continue
        patched = subprocess.run(["kubectl", "patch", "--local", "-f", str(in_cluster), "--type", "merge",
                                  "--patch-file", str(path), "-o", "yaml"], capture_output=True, text=True, timeout=60)
        assert patched.returncode == 0, patched.stderr
        in_cluster.write_text(patched.stdout)
        secret = k8s.decode_manifest(patched.stdout)
        seen.append((len(fingerprints(secret["ca.crt"])), secret["node.key"] == b"the key certrotate never saw"))
    assert seen == [(2, True), (2, False), (1, False)]  # the add step left node.key alone
    final = k8s.decode_manifest(in_cluster.read_text())
    promote = k8s.decode_manifest(manifests(cluster)["03-promote-eu.yaml"].read_bytes())
    assert final["node.crt"] == promote["node.crt"] and final["node.key"] == promote["node.key"]


def test_dry_run_lists_the_file_and_commands_and_writes_nothing(cluster):
    run_cli(cluster, "start", "ca")
    before = cluster.read_bytes()
    result = run_cli(cluster, "advance", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "region eu:" in result.stdout and "01-add-eu.yaml (mode 0644)" in result.stdout
    assert "kubectl -n eu patch secret cockroachdb-node" in result.stdout
    assert not (cluster.parent / "certs" / "kubernetes").exists() and cluster.read_bytes() == before
    run_cli(cluster, "rollback", "--yes")  # nothing was applied anywhere: straight back to idle
    assert run_cli(cluster, "start", "nodes").returncode == 0
    promote = run_cli(cluster, "advance", "--dry-run")
    assert "01-promote-eu.yaml (mode 0600)" in promote.stdout and "node.key (private key, not shown)" in promote.stdout
    assert "PRIVATE KEY" not in promote.stdout and not (cluster.parent / "certs" / "kubernetes").exists()


def test_a_node_only_rotation_is_one_promote_per_region_from_the_current_ca(cluster):
    bundle_before = (cluster.parent / "certs" / "ca.crt").read_bytes()
    assert run_cli(cluster, "start", "nodes").returncode == 0
    gates, _ = walk(cluster)
    assert gates == [("promote", "eu"), ("promote", "us")]
    assert list(manifests(cluster)) == ["01-promote-eu.yaml", "02-promote-us.yaml"]
    secret = k8s.decode_manifest(manifests(cluster)["01-promote-eu.yaml"].read_bytes())
    assert secret["ca.crt"] == bundle_before == (cluster.parent / "certs" / "ca.crt").read_bytes()
    x509.load_pem_x509_certificate(secret["node.crt"]).verify_directly_issued_by(
        x509.load_pem_x509_certificate(bundle_before))
    assert load(cluster).history[-1]["outcome"] == "done"


def test_first_time_setup_is_refused_on_kubernetes(cluster):
    result = run_cli(cluster, "start", "init")
    assert result.returncode == 2 and "helm chart or operator" in result.stderr and "Traceback" not in result.stderr


def test_rollback_before_promote_restores_the_bundle_from_before_as_a_gate(cluster):
    bundle_before = (cluster.parent / "certs" / "ca.crt").read_bytes()
    run_cli(cluster, "start", "ca")
    run_cli(cluster, "advance")
    run_cli(cluster, "advance", "--yes")  # add eu confirmed, add us written
    result = run_cli(cluster, "rollback", "--yes")
    assert result.returncode == 0, result.stderr
    assert "rollback: waiting for confirmation" in result.stdout and "region eu, region us" in result.stdout
    restore = {name: p for name, p in manifests(cluster).items() if "rollback" in name}
    assert list(restore) == ["07-rollback-eu.yaml", "08-rollback-us.yaml"]
    for path in restore.values():
        assert k8s.decode_manifest(path.read_bytes()) == {"ca.crt": bundle_before}
    assert json.loads(run_cli(cluster, "status", "--json").stdout)["phase"] != "idle"
    done = run_cli(cluster, "advance", "--yes")
    assert done.returncode == 0 and "rotation finished" in done.stdout, done.stderr
    state = load(cluster)
    assert state.history[-1]["outcome"] == "rolled back"
    assert (cluster.parent / "certs" / "ca.crt").read_bytes() == bundle_before


def test_rollback_after_promote_needs_the_previous_node_files_and_writes_nothing_without_them(cluster):
    run_cli(cluster, "start", "ca")
    for args in (("advance",), ("advance", "--yes"), ("advance", "--yes"), ("advance", "--yes", "--now", FUTURE)):
        run_cli(cluster, *args)  # promote eu is written: the operator may have applied it
    before = cluster.read_bytes()
    result = run_cli(cluster, "rollback", "--yes")
    assert result.returncode == 2 and "previous" not in result.stdout
    assert "never held the node.key" in result.stderr and "before/eu" in result.stderr
    assert cluster.read_bytes() == before
    assert not [name for name in manifests(cluster) if "rollback" in name]


INVENTORY = """
[cluster]
name = "k"
{cluster}

[[nodes]]
name = "n1"
{node}
"""


def parse(cluster: str = 'delivery = "kubernetes"', node: str = 'addresses = ["a.example"]'):
    text = INVENTORY.format(cluster=cluster, node=node)
    return parse_inventory(tomllib.loads(text), text, "certrotate.toml")


def test_inventory_kubernetes_nodes_need_no_ssh_but_their_addresses():
    inventory = parse()
    assert inventory.cluster.kubernetes_namespace == "default" and inventory.cluster.kubernetes_secret == "cockroachdb-node"
    assert inventory.nodes[0].ssh_host is None
    with pytest.raises(BadInput, match=r"line 6: \[nodes\[0\]\] needs addresses"):
        parse(node="")
    with pytest.raises(BadInput, match="kubernetes_namespace 'Prod_1' is not a Kubernetes name"):
        parse(cluster='delivery = "kubernetes"\nkubernetes_namespace = "Prod_1"')
    with pytest.raises(BadInput, match="delivery is 'helm'; choose one of ssh, kubernetes"):
        parse(cluster='delivery = "helm"')
    with pytest.raises(BadInput, match='node_cert_layout is not supported with delivery = "kubernetes" yet'):
        parse(cluster='delivery = "kubernetes"\nnode_cert_layout = "split"')


def test_inventory_one_namespace_per_region_and_ssh_clusters_unchanged():
    text = """
[cluster]
name = "k"
delivery = "kubernetes"

[[nodes]]
name = "n1"
region = "eu"
addresses = ["a"]

[[nodes]]
name = "n2"
region = "eu"
kubernetes_namespace = "other"
addresses = ["b"]
"""
    with pytest.raises(BadInput, match="line 14: nodes\\[1\\].kubernetes_namespace differs from node 'n1'"):
        parse_inventory(tomllib.loads(text), text, "certrotate.toml")
    ssh = '[cluster]\nname = "s"\n[[nodes]]\nname = "n1"\ncerts_dir = "/c"\n'
    with pytest.raises(BadInput, match="missing the required field 'ssh_host'"):
        parse_inventory(tomllib.loads(ssh), ssh, "certrotate.toml")
    ssh_k = ssh + 'ssh_host = "h"\nkubernetes_namespace = "x"\n'
    with pytest.raises(BadInput, match="only used with"):
        parse_inventory(tomllib.loads(ssh_k), ssh_k, "certrotate.toml")


def test_an_ssh_cluster_state_file_gets_no_kubernetes_fields(tmp_path):
    from core.config.inventory import inventory_to_toml_data

    ssh = '[cluster]\nname = "s"\n[[nodes]]\nname = "n1"\nssh_host = "h"\ncerts_dir = "/c"\n'
    data = inventory_to_toml_data(parse_inventory(tomllib.loads(ssh), ssh, "x"))
    assert not [key for key in data["cluster"] if key.startswith("kubernetes") or key == "delivery"]
    k = inventory_to_toml_data(parse())
    assert k["cluster"]["delivery"] == "kubernetes" and "certs_dir" not in k["nodes"][0]


def test_bundles_of_the_three_steps_are_in_the_documented_order():
    old_a, old_b, new = (pki.issue_ca(key_type="ecdsa-p256", common_name=f"CA {n}") for n in "abn")
    old_pem = old_a.cert_pem + old_b.cert_pem
    assert fingerprints(k8s.add_bundle(old_pem, new.cert_pem)) == [old_a.fingerprint, old_b.fingerprint, new.fingerprint]
    # promote and remove use the engine's combined bundle (new CA first), then drop the old CAs from it
    promoted = bundle.combine(new.cert_pem, old_pem)
    assert fingerprints(promoted) == [new.fingerprint, old_a.fingerprint, old_b.fingerprint]
    old_prints = set(bundle.parse_bundle(old_pem, "old").fingerprints)
    assert fingerprints(bundle.remove(promoted, old_prints)) == [new.fingerprint]
    assert fingerprints(k8s.add_bundle(old_pem + new.cert_pem, new.cert_pem)).count(new.fingerprint) == 1


def test_rollback_after_promote_restores_the_previous_node_files_the_operator_put_back(cluster):
    bundle_before = (cluster.parent / "certs" / "ca.crt").read_bytes()
    run_cli(cluster, "start", "ca")
    for args in (("advance",), ("advance", "--yes"), ("advance", "--yes"), ("advance", "--yes", "--now", FUTURE)):
        run_cli(cluster, *args)
    rotation_id = load(cluster).rotation["id"]
    from core.pki.certs_dir import load_ca
    old_ca = load_ca(cluster.parent / "certs" / "rotations" / rotation_id / "ca-before.crt", cluster.parent / "safe" / "ca.key")
    previous = pki.issue_node(old_ca, ["cockroachdb-0.cockroachdb.eu.svc.cluster.local"], key_type="ecdsa-p256")
    before_dir = cluster.parent / "certs" / "kubernetes" / rotation_id / "before" / "eu"
    files.write_public(before_dir / "node.crt", previous.cert_pem, overwrite=False)
    files.write_private(before_dir / "node.key", previous.key_pem(), overwrite=False)

    result = run_cli(cluster, "rollback", "--yes")
    assert result.returncode == 0 and "rollback: waiting for confirmation" in result.stdout, result.stderr
    restore = manifests(cluster)
    eu, us = restore["07-rollback-eu.yaml"], restore["08-rollback-us.yaml"]
    assert k8s.decode_manifest(eu.read_bytes()) == {"ca.crt": bundle_before, "node.crt": previous.cert_pem,
                                                    "node.key": previous.key_pem()}
    assert stat.S_IMODE(eu.stat().st_mode) == 0o600 and k8s.decode_manifest(us.read_bytes()) == {"ca.crt": bundle_before}
    assert "PRIVATE KEY" not in cluster.read_text() + result.stdout
    done = run_cli(cluster, "advance", "--yes")
    assert done.returncode == 0 and "rotation finished" in done.stdout, done.stderr
    assert load(cluster).history[-1]["outcome"] == "rolled back"


def test_a_client_only_rotation_touches_no_secret(cluster):
    assert run_cli(cluster, "start", "clients").returncode == 0
    gates, printed = walk(cluster)
    assert gates == [] and "kubectl" not in printed
    assert not (cluster.parent / "certs" / "kubernetes").exists()
    exported = x509.load_pem_x509_certificate((cluster.parent / "certs" / "export" / "root" / "client.root.crt").read_bytes())
    assert pki.common_name(exported) == "root" and load(cluster).history[-1]["outcome"] == "done"
