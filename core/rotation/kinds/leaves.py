"""`start nodes` and `start clients`: new leaf certificates from the current CA, nothing else changes.

For new SANs (a load balancer, a renamed host) or a leaked client key. The current CA's key
must be at hand and match, or nothing can be issued.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from core.rotation.kinds.base import Kind, _always
from core.rotation.kinds.expiry import refuse_if_expired

if TYPE_CHECKING:
    from core.config.state import State
    from core.config.workspace import Workspace


def _check_current_cas(ws: Workspace, now: dt.datetime, *, what: str, client_ca_too: bool) -> dict[str, Any]:
    from core.pki import bundle  # cryptography: on use (core.rotation.kinds.expiry says why)

    bundle.parse_bundle(ws.read_bundle(), ws.relative(ws.bundle_path))
    ws.current_ca()
    refuse_if_expired(ws, now, what)
    if client_ca_too:
        ws.current_client_ca()  # the one that signs client certificates and client.node.crt
        if ws.cluster.has_client_ca:
            refuse_if_expired(ws, now, what, ws.client_bundle_path)
    return {}


def check_nodes(_state: State, ws: Workspace, now: dt.datetime, **_options: Any) -> dict[str, Any]:
    return _check_current_cas(ws, now, what="the new node certificates", client_ca_too=ws.cluster.split_node_certs)


def check_clients(_state: State, ws: Workspace, now: dt.datetime, **_options: Any) -> dict[str, Any]:
    return _check_current_cas(ws, now, what="the new client certificates", client_ca_too=True)


NODES = Kind(
    name="nodes",
    title="node certificates only",
    choice="Node certificates only",
    summary="New node certificates from the current CA (e.g. new SANs).",
    renews_node_cert=True,
    node_leaves=_always,
    prepare=check_nodes,
    leaf_title="Roll out new node certificates",
)

CLIENTS = Kind(
    name="clients",
    title="client certificates only",
    choice="Client certificates only",
    summary="New client certificates from the current CA (e.g. a leaked client key).",
    client_leaves=True,
    prepare=check_clients,
    leaf_title="Deliver new client certificates",
)
