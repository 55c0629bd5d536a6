"""`start client-ca`: the client CA (ca-client.crt) rotated through the same four phases.

ca-client.crt is what nodes check client certificates against; node.crt and ca.crt stay.
Only client certificates (and, in the split layout, client.node.crt) are re-issued.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from core.config.inventory import ClusterConfig
from core.errors import BadInput
from core.rotation.kinds.base import FULL_PHASES, Kind

if TYPE_CHECKING:
    from core.config.state import State
    from core.config.workspace import Workspace

NAME = "client-ca"


def prepare(_state: State, ws: Workspace, now: dt.datetime, **_options: Any) -> dict[str, Any]:
    """A client CA rotation needs the current client CA: its key and the local ca-client.crt that it heads."""
    if ws.client_ca_key_path is None:
        raise BadInput("The inventory sets no [cluster] client_ca_key; a client CA rotation needs the client CA's key.")
    if not ws.client_bundle_path.exists():
        raise BadInput(f"{ws.relative(ws.client_bundle_path)} does not exist; the cluster has no client CA to rotate "
                       "yet (create it with `certrotate cert create-client-ca`).")
    ws.current_client_ca()
    return {}


def _split(cluster: ClusterConfig) -> bool:
    return cluster.split_node_certs


def _has_client_ca(cluster: ClusterConfig) -> bool:
    return cluster.has_client_ca


KIND = Kind(
    name=NAME,
    title="client CA rotation",
    choice="Rotate the client CA",
    summary="New client CA in ca-client.crt on every node; wait, new client certificates, retire the old one.",
    phases=FULL_PHASES,
    authority="client",
    new_ca="rotation",
    node_leaves=_split,  # client.node.crt is a client certificate; node.crt stays
    client_leaves=True,
    available=_has_client_ca,
    prepare=prepare,
    step_texts={
        "trust": ("Run the trust step", "Generate the new client CA, upload ca-client.crt (new client CA first, then "
                  "the old) to every node, reload and verify that every node accepts client certificates of both."),
        "wait": ("Run the leaf step", "Issue new client certificates (and client.node.crt in the split layout) from "
                 "the new client CA and deliver them; node.crt and ca.crt stay as they are."),
        "retire": ("Run the retire step", "Upload ca-client.crt without the old client CA to every node, reload, and "
                   "verify that every node accepts the new client CA and refuses the old one."),
    },
)
