"""A node's new leaves in a CA, node or client CA rotation: issued, checked as the node will, as a NodeChange.

A node gets node.crt/node.key (not in a client CA rotation, which keeps node.crt) and, in
the split layout, client.node.crt/.key, all checked on the operator's machine first as the
node will check them on load: node.crt against ca.crt, client.node.crt against what nodes
check client certificates with (ca-client.crt with a client CA, else ca.crt). A first
install also puts its CA bundle(s) up in the same change.
"""

from __future__ import annotations

from dataclasses import dataclass

from core import pki
from core.config.inventory import ClusterConfig, NodeConfig
from core.config.workspace import LeafFiles, ensure_client_node_leaf, ensure_node_leaf
from core.pki.certs_dir import CA_CERT, CLIENT_NODE_CERT, CLIENT_NODE_KEY
from core.pki.checks import check_leaf_files
from core.rotation import key_on_node
from core.rotation.context import Run
from core.rotation.model import ExpectAccepted
from core.rotation.node_change import NodeChange
from core.rotation.plans import PRIVATE, PUBLIC, node_leaf_files


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


def node_leaves(run: Run, node: NodeConfig, node_ca: pki.Issued | None, client_ca: pki.Issued) -> NodeLeafSet:
    """node.crt (when the kind renews it) and, in the split layout, client.node.crt; made once, found again."""
    now = pki.utcnow()
    if not (run.kind.renews_node_cert and node_ca is not None):
        server = None
    elif key_on_node.wanted(run, node):  # the key is made on the node; only its CSR comes here
        server = key_on_node.node_leaf(run, node, node_ca, now=now)
    else:
        server = ensure_node_leaf(run.ws, run.rid, node_ca, node, now=now, dry_run=run.dry_run)
    client_node = (ensure_client_node_leaf(run.ws, run.rid, client_ca, node, now=now, dry_run=run.dry_run)
                   if run.inventory.cluster.split_node_certs else None)
    return NodeLeafSet(server, client_node)


def leaf_change(run: Run, node: NodeConfig, leaves: NodeLeafSet, first_bundles: dict[str, bytes], *,
                server_bundle: bytes, client_bundle: bytes, trusted: tuple[str, ...] = ()) -> NodeChange:
    """The node's leaves, checked, as one change; without a new node.crt it must go on serving the one it serves."""
    check_node_leaf_set(leaves, node_name=node.name, cluster=run.inventory.cluster, server_bundle=server_bundle,
                        client_bundle=client_bundle, now=pki.utcnow())
    server, client_node = leaves.server, leaves.client_node
    extra = {name: (pem, PUBLIC) for name, pem in first_bundles.items() if name != CA_CERT} | leaves.extra_files()
    files = node_leaf_files(server.cert_pem if server else None, server.key_pem if server else None,
                            first_bundles.get(CA_CERT), extra)
    accepted = (ExpectAccepted(node.name, node.sql_addr, pki.NODE_USER, client_node.fingerprint, client_node.cert_pem,
                               client_node.key_pem),) if client_node and node.sql_addr else ()
    recorded = ({"leaf_fingerprint": server.fingerprint} if server else {}) | (
        {"client_node_fingerprint": client_node.fingerprint} if client_node else {})
    what = f"serves the new certificate {server.fingerprint[:16]}…" if server else "keeps serving its certificate"
    return NodeChange(files, serves=server.fingerprint if server else None, accepted=accepted, trusted=trusted,
                      recorded=recorded,
                      done_text=what + (f", accepts its new {CLIENT_NODE_CERT}" if client_node else ""),
                      key_made_on_node=run.kind.renews_node_cert and key_on_node.wanted(run, node))
