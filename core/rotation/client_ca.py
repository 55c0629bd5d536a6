"""Split certificates: the client CA as a second trust domain, and the node's split leaf set.

CockroachDB can keep two CAs apart: `ca.crt` verifies node certificates (what clients and
other nodes check a node against), `ca-client.crt` verifies client certificates (what a
node checks a connecting client against). A CA rotation is then one of two: `start ca`
changes `ca.crt`, `start client-ca` changes `ca-client.crt`; both go through the same
phases (trust → wait → leaf → retire). An `Authority` names everything that differs
between the two, so the engine's steps take it as data instead of branching on the kind.

The split node layout adds `client.node.crt` beside `node.crt`: node.crt (no CN) only
serves, client.node.crt (CN=node) is what a node presents when it dials another node.
Both are issued, checked, uploaded and verified together (`NodeLeafSet`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from core import pki
from core.pki.certs_dir import CA_CERT, CLIENT_CA_CERT, client_cert_name, client_key_name
from core.errors import BadInput
from core.config.inventory import ClusterConfig
from core.rotation.plans import PRIVATE, PUBLIC
from core.pki.checks import check_leaf_files
from core.config.workspace import LeafFiles, Workspace

CLIENT_NODE_CERT = client_cert_name(pki.NODE_USER)
CLIENT_NODE_KEY = client_key_name(pki.NODE_USER)
CLIENT_CA_KIND = "client-ca"


@dataclass(frozen=True)
class Authority:
    """One CA a rotation replaces: which bundle file it lives in and where its key is kept."""

    bundle_file: str  # on every node and in local_certs_dir: ca.crt or ca-client.crt
    local_bundle: Path  # the operator's copy of the bundle
    key_path: Path  # the current CA key, on the operator's machine only
    key_field: str  # the [cluster] field that names the key; retire points it at the new key
    common_name: str  # of a CA made by a rotation (the rotation id is added)
    # Clients check nodes against ca.crt, so they need its new bundle; ca-client.crt is read by nodes only.
    clients_hold_bundle: bool
    # A throwaway client certificate proves a node trusts a CA only if the node checks client
    # certificates against this bundle: with a client CA the nodes check them against ca-client.crt.
    probes_prove_trust: bool

    @property
    def stem(self) -> str:
        return self.bundle_file.removesuffix(".crt")

    @property
    def before_name(self) -> str:
        """The bundle from before the rotation, kept beside its files (ca-before.crt, ca-client-before.crt)."""
        return f"{self.stem}-before.crt"

    def new_key_path(self, rotation_id: str) -> Path:
        return self.key_path.parent / f"{self.stem}-{rotation_id}.key"


def node_authority(ws: Workspace) -> Authority:
    cluster = ws.cluster
    return Authority(CA_CERT, ws.bundle_path, ws.ca_key_path, "ca_key", f"Cockroach CA {cluster.name}",
                     clients_hold_bundle=True, probes_prove_trust=not cluster.has_client_ca)


def client_authority(ws: Workspace) -> Authority:
    if ws.client_ca_key_path is None:
        raise BadInput("The inventory sets no [cluster] client_ca_key; a client CA rotation needs the client CA's key.")
    return Authority(CLIENT_CA_CERT, ws.client_bundle_path, ws.client_ca_key_path, "client_ca_key",
                     f"Cockroach Client CA {ws.cluster.name}", clients_hold_bundle=False, probes_prove_trust=True)


def authority_for(ws: Workspace, kind: str) -> Authority:
    """The CA a rotation of `kind` replaces (or, for a leaf-only kind, the one it leaves alone)."""
    return client_authority(ws) if kind == CLIENT_CA_KIND else node_authority(ws)


def check_can_start_client_ca(ws: Workspace) -> None:
    """A client CA rotation needs the current client CA: its key and the local ca-client.crt that it heads."""
    authority = client_authority(ws)
    if not authority.local_bundle.exists():
        raise BadInput(f"{ws.relative(authority.local_bundle)} does not exist; the cluster has no client CA to rotate "
                       "yet (create it with `certrotate cert create-client-ca`).")
    ws.current_client_ca()


@dataclass(frozen=True)
class NodeLeafSet:
    """What one node gets in a leaf step, uploaded together, reloaded once, restored together.

    `server`: node.crt/node.key (None when only the client CA changes: node.crt stays).
    `client_node`: client.node.crt/.key in the split layout (None in the combined one).
    """

    server: LeafFiles | None
    client_node: LeafFiles | None

    def extra_files(self) -> dict[str, tuple[bytes, int]]:
        """The files beside node.crt/node.key: client.node.key first (keys before certificates)."""
        if self.client_node is None:
            return {}
        return {CLIENT_NODE_KEY: (self.client_node.key_pem, PRIVATE), CLIENT_NODE_CERT: (self.client_node.cert_pem, PUBLIC)}


def check_node_leaf_set(leaves: NodeLeafSet, *, node_name: str, cluster: ClusterConfig, server_bundle: bytes,
                        client_bundle: bytes, now) -> None:
    """Each file as a node checks it on load: node.crt against ca.crt, client.node.crt against
    what nodes check client certificates with (ca-client.crt with a client CA, else ca.crt)."""
    if leaves.server is not None:
        check_leaf_files(leaves.server.cert_pem, leaves.server.key_pem, server_bundle, f"the new node.crt of {node_name}",
                         now=now, client=False,
                         node_principal=cluster.profile == "cockroach" and not cluster.split_node_certs)
    if leaves.client_node is not None:
        check_leaf_files(leaves.client_node.cert_pem, leaves.client_node.key_pem, client_bundle,
                         f"the new {CLIENT_NODE_CERT} of {node_name}", now=now, client=True, node_principal=True)
