"""Opening a rotation (`certrotate start`, the wizard's start screen): checked, staged, recorded; no host touched.

A rotation opens on the operator's machine alone: the kind's own checks, the delivery's and
the signer's, the certificates that would lock someone out, then the new CA made once and
written to the workspace (core.rotation.contract), so every preview and the run use that CA.
Only a kind that decides from what the nodes serve (`start recover`) reaches them, with TLS
probes (core.rotation.served); every other kind opens without the network, so this module
imports none of the SSH machinery that running a rotation needs (core.rotation.engine,
which re-exports `start`).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from core import files, pki
from core.config.record import opened, rotation_id_for
from core.config.state import State
from core.config.workspace import Workspace
from core.errors import BadInput
from core.pki.certs_dir import CA_CERT
from core.rotation import contract, deliveries, kinds
from core.signers import select as signer_select
from core.signers.identity import check_identities

__all__ = ["kind_title", "start"]


def start(state: State, kind_name: str, *, now: dt.datetime | None = None, **options: Any) -> dict[str, Any]:
    """Open a rotation of `kind_name`; refuses while another is in flight. Nothing is touched yet."""
    kind = kinds.get(kind_name)
    if kind.hidden:
        raise BadInput(f"A {kind_name} rotation is chosen by `certrotate start recover` from what it sees on the "
                       "cluster; run that instead.")
    deliveries.check_start(state.inventory.cluster, kind)
    if state.rotation:
        raise BadInput(
            f"A {kind_title(state.rotation.get('kind'))} ({state.rotation.get('id')}) is already in phase "
            f"{state.phase}; run `certrotate advance` to continue it or `certrotate rollback` to undo it "
            "(in the wizard: n, or b)."
        )
    if kind.open is not None:  # the kind decides or stages for itself (ui: the operator's files; recover: expiry)
        if kind.observes_nodes:
            from core.rotation.served import served_not_after  # the one kind that probes nodes before it opens

            options["served"] = served_not_after(state)
        rotation = kind.open(state, now=now, **options)
        contract.stage_new_cas(state)  # a recovery's new CA too: the preview shows what the run installs
        return rotation
    real_now = pki.utcnow()
    ws = Workspace(state.base_dir, state.inventory.cluster)
    organisation_ca = signer_select.check_start(ws, kind.name, options.pop("new_ca", None))  # start ca --new-ca FILE
    if not state.inventory.cluster.on_kubernetes:
        check_identities(state.inventory)  # no certificate that would lock a user or a node out
    extra = kind.prepare(state, ws, now or real_now, **options)
    rotation_id = rotation_id_for(kind.name, real_now)
    state.rotation = opened(rotation_id, kind.name, kind.first_phase, real_now, **extra)
    if organisation_ca is not None:  # the new CA is the organisation's: found there by core.signers.select.rotation_ca
        files.write_public(ws.rotation_dir(rotation_id) / CA_CERT, organisation_ca, overwrite=False)
    state.record("start", at=real_now, detail=f"{kind.name} rotation {rotation_id}")
    contract.stage_new_cas(state)  # every preview and the run then use this one CA
    return state.rotation


def kind_title(kind_name: str | None) -> str:
    """How a sentence names a rotation kind: "first-time setup", not "init rotation"."""
    kind = kinds.lookup(kind_name)
    return kind.title if kind else f"{kind_name} rotation"
