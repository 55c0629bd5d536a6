"""`start init`: first-time setup of a cluster that has no certificates yet.

The cluster's first CA (and client CA, when the inventory names one) is made by the
rotation; bundle and leaves go up together, and a node that fails does not stop the others,
since nothing serves yet.
"""

from __future__ import annotations

from core.config.state import State
from core.config.workspace import Workspace
from core.errors import BadInput
from core.rotation.kinds.base import Kind, _always


def check_start(_state: State, ws: Workspace) -> None:
    client_ca_files = [ws.client_ca_key_path, ws.client_bundle_path] if ws.client_ca_key_path else []
    for existing in [ws.ca_key_path, ws.bundle_path] + client_ca_files:
        if existing.exists():
            raise BadInput(
                f"{ws.relative(existing)} already exists; `start init` is for a cluster without certificates. "
                "Use `start ca` (or `start client-ca`) to rotate an existing CA."
            )


KIND = Kind(
    name="init",
    title="first-time setup",
    choice="First-time setup",
    summary="A cluster without certificates: CA, node and client certificates, distributed and verified.",
    new_ca="first",
    renews_node_cert=True,
    node_leaves=_always,
    client_leaves=True,
    check_start=check_start,
    leaf_title="Run the first-time setup",
)
