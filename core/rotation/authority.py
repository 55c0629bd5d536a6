"""Which CA a rotation works on: ca.crt (the node CA) or ca-client.crt (the client CA).

CockroachDB can keep two CAs apart: `ca.crt` verifies node certificates (what clients and
other nodes check a node against), `ca-client.crt` verifies client certificates (what a
node checks a connecting client against). A CA rotation changes one of them; an
`Authority` names everything that differs between the two, so the steps take it as data.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from core.config.workspace import Workspace
from core.errors import BadInput
from core.pki.certs_dir import CA_CERT, CLIENT_CA_CERT


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


def authority_for(ws: Workspace, which: str) -> Authority:
    """The CA a rotation works on: "client" (ca-client.crt) or "node" (ca.crt, also what leaf-only kinds leave alone)."""
    return client_authority(ws) if which == "client" else node_authority(ws)
