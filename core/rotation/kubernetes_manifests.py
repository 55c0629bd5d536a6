"""Kubernetes delivery, pure part: the node Secret of each rotation step, and the commands to roll it out.

An operator-managed CockroachDB (helm chart, operator, or the StatefulSet configs of the
CockroachDB repository) reads its certificates from a Secret mounted into every pod, and
takes them up on a pod restart, not on SIGHUP. certrotate cannot log in and reload there,
so it renders each step as a Secret manifest and the kubectl commands that roll it out;
the operator runs them and confirms (core/rotation/deliveries/kubernetes.py keeps the gates).

The order follows the Cassandra operator's documented CA rotation, region by region:

1. `add`      ca.crt = old CA(s) first, the new CA second; rolling restart;
2. (wait `leaf_delay_days`);
3. `promote`  ca.crt = new CA first, old second, and node.crt/node.key from the new CA;
              rolling restart;
4. `remove`   ca.crt = new CA only (node.crt/node.key unchanged); rolling restart.

One node certificate per region covers every address of that region's nodes, as the
CockroachDB Kubernetes setups share one `node.crt` among the pods of a StatefulSet.

The Secret keeps cockroach's file names (ca.crt, node.crt, node.key), as
`kubectl create secret generic cockroachdb-node --from-file=certs/` makes it and the
helm chart's `tls.certs.provided` (with `tlsSecret: false`) reads it.

Every manifest is applied with `kubectl patch --type merge --patch-file`, not
`kubectl apply`: a merge patch changes exactly the keys it lists. The `add` step holds
only ca.crt, because certrotate never had the node key the cluster runs with; applied
with `kubectl apply` it would drop node.crt and node.key from a Secret that an earlier
`kubectl apply` created (apply deletes the keys its last applied version had and this
one lacks). Each manifest is still a complete, valid `kind: Secret` document.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.config.inventory import ClusterConfig, Inventory, NodeConfig, resolve_local
from core.config.record import RotationRecord
from core.pki import bundle
from core.pki.certs_dir import CA_CERT, NODE_KEY

MANAGED_BY = "certrotate"
ROTATION_LABEL = "certrotate/rotation-id"
STEP_LABEL = "certrotate/step"
DEFAULT_REGION = "default"  # the region of nodes that name none
# Forward steps of each rotation kind, in order; `rollback` restores the Secret from before.
KIND_STEPS = {"ca": ("add", "promote", "remove"), "nodes": ("promote",)}
STEP_TITLES = {
    "add": "the new CA added second in ca.crt (old CA first)",
    "promote": "the new CA first in ca.crt and node.crt/node.key from it",
    "remove": "the old CA removed from ca.crt",
    "rollback": "the Secret from before the rotation",
}
RUN_TEXTS = {  # the wizard's "next" panel, per phase, before a region's manifest is written
    "trust": "Make the new CA and write, region by region, the node Secret with the new CA added second in ca.crt. "
             "You apply each and restart its StatefulSet; certrotate verifies the nodes it can reach.",
    "leaf": "Issue one node certificate per region and write, region by region, the node Secret that puts it in "
            "place. You apply each and restart its StatefulSet; each node must then serve the new certificate.",
    "retire": "Write, region by region, the node Secret whose ca.crt holds only the new CA. You apply each and "
              "restart its StatefulSet; each node must then refuse the old CA.",
}
GATE_PREFIX = "region "  # a gate item: "region us-east1"; client user names cannot hold a space


@dataclass(frozen=True)
class RegionTarget:
    """One region's StatefulSet: where its Secret lives and which nodes (addresses) it serves."""

    region: str
    namespace: str
    secret: str
    statefulset: str
    nodes: tuple[NodeConfig, ...]

    @property
    def addresses(self) -> tuple[str, ...]:
        """Every SAN of the region's shared node certificate, in inventory order, once each."""
        return tuple(dict.fromkeys(address for node in self.nodes for address in node.addresses))

    @property
    def gate_item(self) -> str:
        return GATE_PREFIX + self.region


def region_of(node: NodeConfig) -> str:
    return node.region or DEFAULT_REGION


def namespace_of(cluster: ClusterConfig, node: NodeConfig) -> str:
    return node.kubernetes_namespace or cluster.kubernetes_namespace


def regions(inventory: Inventory) -> list[RegionTarget]:
    """The regions in the order their first node appears in the inventory: the rollout order."""
    cluster = inventory.cluster
    names = list(dict.fromkeys(region_of(node) for node in inventory.nodes))
    targets = []
    for name in names:
        nodes = tuple(node for node in inventory.nodes if region_of(node) == name)
        targets.append(RegionTarget(name, namespace_of(cluster, nodes[0]), cluster.kubernetes_secret,
                                    cluster.kubernetes_statefulset, nodes))
    return targets


# -- the CA bundles of the three steps --------------------------------------------------------


def add_bundle(old_bundle_pem: bytes, new_ca_pem: bytes) -> bytes:
    """Old CA(s) first, the new CA second: nodes keep presenting and preferring the old chain."""
    old = bundle.parse_bundle(old_bundle_pem, "the CA bundle from before the rotation")
    new = bundle.parse_bundle(new_ca_pem, "the new CA")
    known = set(old.fingerprints)
    return bundle.join_pem([e.pem for e in old.entries] + [e.pem for e in new.entries if e.fingerprint not in known])


# -- manifests --------------------------------------------------------------------------------


@dataclass(frozen=True)
class SecretManifest:
    """The node Secret of one step in one region: which files it sets, and how to apply it."""

    target: RegionTarget
    step: str
    rotation_id: str
    files: dict[str, bytes]  # Secret key (cockroach file name) -> content

    def __repr__(self) -> str:  # never show key material, even in a traceback
        return f"SecretManifest({self.step} {self.target.region}: {', '.join(self.files)})"

    @property
    def private(self) -> bool:
        """Holds a private key: written 0600, never shown."""
        return NODE_KEY in self.files

    def document(self) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": self.target.secret,
                "namespace": self.target.namespace,
                "labels": {
                    "app.kubernetes.io/managed-by": MANAGED_BY,
                    ROTATION_LABEL: self.rotation_id,
                    STEP_LABEL: self.step,
                },
            },
            "type": "Opaque",
            "data": {name: base64.b64encode(content).decode("ascii") for name, content in self.files.items()},
        }

    def render(self) -> bytes:
        """YAML, byte for byte the same for the same files (the state file records its sha256)."""
        import yaml  # PyYAML: only when a manifest is written, not when the wizard starts

        header = (f"# certrotate {self.rotation_id}: {self.step} in region {self.target.region}: "
                  f"{STEP_TITLES[self.step]}.\n")
        if self.private:
            header += "# Holds node.key: keep this file 0600 and delete it once the rotation is finished.\n"
        body = yaml.safe_dump(self.document(), sort_keys=False, default_flow_style=False, width=1 << 20)
        return (header + body).encode()

    def file_name(self, index: int) -> str:
        return f"{index:02d}-{self.step}-{self.target.region}.yaml"

    def summary(self) -> str:
        """What the Secret will hold, without any content: for the screen, the log and dry runs."""
        parts = []
        for name, content in self.files.items():
            if name == CA_CERT:
                count = len(bundle.parse_bundle(content, name).entries)
                parts.append(f"{name} ({count} CA{'s' * (count != 1)})")
            elif name == NODE_KEY:
                parts.append(f"{name} (private key, not shown)")
            else:
                parts.append(f"{name} (sha256 {hashlib.sha256(content).hexdigest()[:16]}…)")
        return f"Secret {self.target.namespace}/{self.target.secret}: " + ", ".join(parts)


def commands(target: RegionTarget, manifest_path: str) -> list[str]:
    """What the operator runs for one step: change the Secret, restart the pods one by one, wait."""
    ns, sts = target.namespace, target.statefulset
    return [
        f"kubectl -n {ns} patch secret {target.secret} --type merge --patch-file {manifest_path}",
        f"kubectl -n {ns} rollout restart statefulset/{sts}",
        f"kubectl -n {ns} rollout status statefulset/{sts}",
    ]


def step_index(kind: str, step: str, region_index: int, region_count: int) -> int:
    """The NN of NN-<step>-<region>.yaml: the order in which the operator applies the files."""
    steps = KIND_STEPS.get(kind, ())
    position = steps.index(step) if step in steps else len(steps)
    return position * region_count + region_index + 1


def decode_manifest(text: bytes | str) -> dict[str, bytes]:
    """The files a manifest sets (for verification and tests): Secret key -> decoded content."""
    import yaml

    document = yaml.safe_load(text)
    return {name: base64.b64decode(value) for name, value in (document.get("data") or {}).items()}


# -- what the wizard shows at a gate (pure: reads the rotation record) ------------------------


def records(rotation: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per region: {step: "written" | "confirmed" | "done", f"{step}_manifest": path, ...}."""
    return RotationRecord(rotation).regions if rotation else {}


def waiting_gates(inventory: Inventory, rotation: dict[str, Any]) -> list[tuple[RegionTarget, str, str]]:
    """(region, step, manifest path) of every manifest written and waiting for the operator's confirmation."""
    recorded = records(rotation)
    out = []
    for target in regions(inventory):
        record = recorded.get(target.region, {})
        # A rollback in progress replaces the forward steps: only its manifests still count.
        steps = ("rollback",) if "rollback" in record else KIND_STEPS.get(RotationRecord(rotation).kind, ())
        for step in steps:
            if record.get(step) == "written":
                out.append((target, step, record.get(f"{step}_manifest", "")))
    return out


def gate_instructions(inventory: Inventory, rotation: dict[str, Any], base_dir: Path) -> dict[str, list[str]]:
    """Per gate item ("region X"): the manifest, then the commands to copy. No key material."""
    out: dict[str, list[str]] = {}
    for target, step, path in waiting_gates(inventory, rotation):
        full = str(resolve_local(path, base_dir))
        out[target.gate_item] = [f"{step}: {STEP_TITLES[step]}", f"manifest {full}", *commands(target, full)]
    return out
