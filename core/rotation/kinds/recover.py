"""`start recover`: bring back a cluster whose certificates have expired, in one guided step.

Expiry is the outage operators meet most, and the usual runbook does not apply to it: a CA
rotation overlaps the new CA with one the cluster still trusts, and an expired CA is trusted
by nothing. So recovery decides from what it sees (the local CA, what each node serves, the
clients' certificates) and picks one of four hidden kinds:

- the CA expired: a new CA takes its place, with new node and client certificates from it;
- the CA is valid but node (and maybe client) certificates expired: new leaves from the current CA;
- only client certificates expired: new client certificates from the current CA.

Then, since nothing can connect anyway, every node gets its files at once, reloads once, and
must serve its new certificate and accept client certificates of the CA in force. No wait:
there is no overlap to protect. It refuses a cluster that still serves valid certificates,
where skipping the wait would cut off clients that still work; that is `start ca` or
`start nodes`. The decision is pure (`decide`); what the nodes serve is handed in by the engine.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from core import pki
from core.config.record import opened, rotation_id_for
from core.errors import BadInput
from core.rotation.kinds.base import Kind, _always, _never
from core.rotation.kinds.expiry import signing_ca_life

if TYPE_CHECKING:
    from core.config.state import State
    from core.config.workspace import Workspace

NAME = "recover"
NEW_CA, NODES, LEAVES, CLIENTS = "recover-ca", "recover-nodes", "recover-leaves", "recover-clients"
SAFE_TO_SKIP_WAIT = ("Skipping the usual wait is safe because nothing can connect now: there is no working trust "
                     "to overlap with, so every node and client gets its new files at once.")


@dataclass(frozen=True)
class Observed:
    """What certrotate sees of a cluster's certificates before it recovers it."""

    ca_not_after: dt.datetime  # the local bundle's first CA (the one whose key the operator holds)
    nodes: dict[str, dt.datetime | None]  # what each node serves: its notAfter (None: no answer, no sql_addr)
    clients: dict[str, dt.datetime | None]  # each client user's newest certificate (None: none known)
    client_ca_not_after: dt.datetime | None = None  # the client CA (ca-client.crt) when the cluster has one


@dataclass(frozen=True)
class Recovery:
    """The recovery a cluster down by expiry needs: which hidden kind, why, and what expired."""

    kind: str  # one of the hidden kinds below
    why: str  # what was seen, and what the recovery will do
    expired_nodes: tuple[str, ...] = ()
    expired_clients: tuple[str, ...] = ()


def _names(names) -> str:
    return ", ".join(names)


def decide(seen: Observed, now: dt.datetime) -> Recovery:
    """Which recovery the observed cluster needs; BadInput, naming the right command, when it needs none."""
    recovery = diagnose(seen, now)
    if recovery is not None:
        return recovery
    silent = tuple(name for name, until in seen.nodes.items() if until is None)
    unheard = (f" ({_names(silent)} did not answer: if it is down for another reason, fix that first)"
               if silent else "")
    raise BadInput(f"The cluster is not down by expiry: its CA is valid until {seen.ca_not_after:%Y-%m-%d} and every "
                   f"node that answered serves a valid certificate{unheard}. Recovery skips the wait that protects "
                   "working clients, so it is not for a cluster that works: rotate the CA with `certrotate start ca`, "
                   "or renew leaves with `certrotate start nodes` or `certrotate start clients`.")


def diagnose(seen: Observed, now: dt.datetime) -> Recovery | None:
    """The recovery an expired cluster needs, or None when nothing it relies on has expired."""
    expired_nodes = tuple(name for name, until in seen.nodes.items() if until is not None and until <= now)
    expired_clients = tuple(user for user, until in seen.clients.items() if until is not None and until <= now)
    if seen.ca_not_after <= now or (seen.client_ca_not_after is not None and seen.client_ca_not_after <= now):
        which = "The CA" if seen.ca_not_after <= now else "The client CA"
        ended = seen.ca_not_after if seen.ca_not_after <= now else seen.client_ca_not_after
        return Recovery(NEW_CA, f"{which} expired on {ended:%Y-%m-%d %H:%M} UTC, so no certificate it signed is "
                                "accepted. certrotate makes a new CA and new node and client certificates from it, puts "
                                f"them on every node at once, reloads, and proves each node serves its new certificate. "
                                f"{SAFE_TO_SKIP_WAIT}", expired_nodes, expired_clients)
    if expired_nodes:
        with_clients = f" and client certificates of {_names(expired_clients)}" if expired_clients else ""
        return Recovery(LEAVES if expired_clients else NODES,
                        f"The CA is valid until {seen.ca_not_after:%Y-%m-%d}, but the node certificates of "
                        f"{_names(expired_nodes)}{with_clients} expired. certrotate issues new leaves from the current "
                        f"CA and puts them on every node at once, with one reload each. {SAFE_TO_SKIP_WAIT}",
                        expired_nodes, expired_clients)
    if expired_clients:
        return Recovery(CLIENTS, f"The CA and every node that answered are valid, but the client certificates of "
                                 f"{_names(expired_clients)} expired. certrotate issues new client certificates from the "
                                 "current CA and delivers them; the nodes are left alone.", (), expired_clients)
    return None


# -- what the operator's files say ------------------------------------------------------------


def newest_client_certificate(ws: Workspace, state: State, user: str) -> dt.datetime | None:
    """When the newest certificate certrotate knows for `user` ends (None: it knows none)."""
    newest = ws.newest_client_certificate(user, state.history)
    return newest.not_valid_after_utc if newest is not None else None


def observed(state: State, ws: Workspace, served: dict[str, dt.datetime | None]) -> Observed:
    client_ca = signing_ca_life(ws, ws.client_bundle_path).not_after if ws.cluster.has_client_ca else None
    return Observed(signing_ca_life(ws).not_after, served,
                    {c.user: newest_client_certificate(ws, state, c.user) for c in state.inventory.clients},
                    client_ca)


def open_recovery(state: State, *, served: dict[str, dt.datetime | None], now: dt.datetime | None = None,
                  **_options: Any) -> dict[str, Any]:
    """Decide from what is seen, and open the rotation of the recovery it needs (phase leaf)."""
    from core.config.workspace import Workspace  # cryptography: on use (core.rotation.kinds.expiry says why)

    real_now = pki.utcnow()
    ws = Workspace(state.base_dir, state.inventory.cluster)
    recovery = decide(observed(state, ws, served), now or real_now)
    rotation_id = rotation_id_for(recovery.kind, real_now)
    state.rotation = opened(rotation_id, recovery.kind, "leaf", real_now, recovery={
        "why": recovery.why, "expired_nodes": list(recovery.expired_nodes),
        "expired_clients": list(recovery.expired_clients)})
    state.record("start", at=real_now, detail=f"{recovery.kind} rotation {rotation_id}: {recovery.why}")
    return state.rotation


RECOVER = Kind(
    name=NAME,
    title="recovery of an expired cluster",
    choice="Recover an expired cluster",
    summary="Certificates expired and nothing connects: new CA or new leaves, on every node at once, no wait.",
    open=open_recovery,
    observes_nodes=True,
)

_HIDDEN = {"hidden": True, "available": _never, "all_at_once": True, "leaf_title": "Run the recovery"}

RECOVER_NEW_CA = Kind(
    name=NEW_CA, title="recovery with a new CA", choice="", summary="", new_ca="replace", renews_node_cert=True,
    node_leaves=_always, client_leaves=True, **_HIDDEN)
RECOVER_NODES = Kind(
    name=NODES, title="recovery with new node certificates", choice="", summary="", renews_node_cert=True,
    node_leaves=_always, **_HIDDEN)
RECOVER_LEAVES = Kind(
    name=LEAVES, title="recovery with new node and client certificates", choice="", summary="",
    renews_node_cert=True, node_leaves=_always, client_leaves=True, **_HIDDEN)
RECOVER_CLIENTS = Kind(
    name=CLIENTS, title="recovery with new client certificates", choice="", summary="", client_leaves=True, **_HIDDEN)
