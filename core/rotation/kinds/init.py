"""`start init`: first-time setup of a cluster that has no certificates yet.

The cluster's first CA (and client CA, when the inventory names one) is made by the
rotation; bundle and leaves go up together, and a node that fails does not stop the others,
since nothing serves yet.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from core.errors import BadInput
from core.rotation.kinds.base import Kind, _always
from core.rotation.kinds.expiry import RECOVER

if TYPE_CHECKING:
    from core.config.state import State
    from core.config.workspace import Workspace


def prepare(_state: State, ws: Workspace, now: dt.datetime, **_options: Any) -> dict[str, Any]:
    client_ca_files = [ws.client_ca_key_path, ws.client_bundle_path] if ws.client_ca_key_path else []
    for existing in [ws.ca_key_path, ws.bundle_path] + client_ca_files:
        if existing.exists():
            if ws.bundle_path.exists() and _every_ca_expired(ws, now):
                raise BadInput(f"{ws.relative(existing)} already exists and its CA has expired; `start init` is for a "
                               f"cluster without certificates. Bring this one back with `{RECOVER}`.")
            raise BadInput(
                f"{ws.relative(existing)} already exists; `start init` is for a cluster without certificates. "
                "Use `start ca` (or `start client-ca`) to rotate an existing CA."
            )
    return {}


def _every_ca_expired(ws: Workspace, now: dt.datetime) -> bool:
    from core.pki import bundle  # cryptography: on use (core.rotation.kinds.expiry says why)

    try:
        ca_bundle = bundle.parse_bundle(ws.read_bundle(), ws.relative(ws.bundle_path))
    except BadInput:
        return False
    return len(ca_bundle.expired(now)) == len(ca_bundle.entries)


KIND = Kind(
    name="init",
    title="first-time setup",
    choice="First-time setup",
    summary="A cluster without certificates: CA, node and client certificates, distributed and verified.",
    new_ca="first",
    renews_node_cert=True,
    node_leaves=_always,
    client_leaves=True,
    prepare=prepare,
    leaf_title="Run the first-time setup",
)
