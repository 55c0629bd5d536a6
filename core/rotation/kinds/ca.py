"""`start ca`: a new CA, trusted everywhere before it signs anything, then the old one retired."""

from __future__ import annotations

from core.config.state import State
from core.config.workspace import Workspace
from core.errors import BadInput
from core.pki import bundle, utcnow
from core.rotation.kinds.base import FULL_PHASES, Kind, _always


def check_start(state: State, ws: Workspace) -> None:
    """A CA rotation overlaps the new CA with a CA the cluster still trusts; with none left there is no overlap."""
    ca_bundle = bundle.parse_bundle(ws.read_bundle(), ws.relative(ws.bundle_path))
    expired = ca_bundle.expired(utcnow())
    if expired and len(expired) == len(ca_bundle.entries):
        raise BadInput("Every CA in the local bundle has expired; the cluster trusts nothing valid. Use `start init`.")


KIND = Kind(
    name="ca",
    title="CA rotation",
    choice="CA rotation",
    summary="New CA; trust it everywhere, wait, new node and client certificates, retire the old CA.",
    phases=FULL_PHASES,
    authority="node",
    new_ca="rotation",
    renews_node_cert=True,
    node_leaves=_always,
    client_leaves=True,
    check_start=check_start,
)
