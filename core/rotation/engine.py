"""The rotation runbook as code: phases, gates, and a resumable `advance`.

A CA rotation goes trust → wait → leaf → retire → idle; the other kinds are a single leaf
phase (core.rotation.kinds says which kind does what). `advance` runs every step that is
ready, in order, and stops at a gate: a schedule date or an operator confirmation.

Every step observes the hosts first and plans only what is missing (core.rotation.plans),
so a run killed at any instant is finished by running `advance` again. The state file is
saved after every host, so its record is never ahead of the nodes by more than one host
step, and a step that is recorded done is re-checked cheaply rather than trusted blindly.

This module reads top to bottom as the runbook. What differs between kinds is data on the
`Kind`; what differs between SSH and Kubernetes is the `Delivery` (core.rotation.deliveries),
which does the node side of each step. The parts below both: the CAs and bundles
(core.rotation.signers), the clients' files (core.rotation.clients), the phase changes and
the close-out (core.rotation.lifecycle), and putting files back (core.rotation.restore).
"""

from __future__ import annotations

import datetime as dt
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

from core import files, pki
from core.config.record import RotationRecord, client_key, confirm_key_for, opened, rotation_id_for
from core.config.state import State
from core.config.workspace import Workspace
from core.errors import BadInput, CertRotateError
from core.pki import bundle
from core.pki.certs_dir import CA_CERT, CLIENT_CA_CERT
from core.remote.probes import probe_sql
from core.remote.ssh import SshPool
from core.rotation import client_proof, contract, deliveries, kinds, last_error, lifecycle, proof_record
from core.rotation import signers as signers_mod
from core.rotation.clients import (
    check_clients_hold_new_leaves,
    confirmation_gate,
    deliver_bundle,
    deliver_client_leaves,
)
from core.rotation.context import MAX_PARALLEL_HOSTS, Run
from core.rotation.kinds import FULL_PHASES
from core.rotation.model import Gate, Outcome, Reporter, silent
from core.rotation.plans import TrustCheck
from core.rotation.signing_gate import awaiting_signatures
from core.signers import select as signer_select
from core.signers.identity import check_identities

PHASES = ("idle",) + FULL_PHASES
SERVED_PROBE_TIMEOUT = 5.0

__all__ = ["PHASES", "Gate", "Outcome", "advance", "confirm", "current_confirm_key", "rollback", "start"]


# -- start ------------------------------------------------------------------------------------


def start(state: State, kind_name: str, *, now: dt.datetime | None = None, **options: Any) -> dict[str, Any]:
    """Open a rotation of `kind_name`; refuses while another is in flight. Nothing is touched yet."""
    kind = kinds.get(kind_name)
    if kind.hidden:
        raise BadInput(f"A {kind_name} rotation is chosen by `certrotate start recover` from what it sees on the "
                       "cluster; run that instead.")
    deliveries.for_cluster(state.inventory.cluster).check_start(kind)
    if state.rotation:
        raise BadInput(
            f"A {_title(state.rotation.get('kind'))} ({state.rotation.get('id')}) is already in phase "
            f"{state.phase}; run `certrotate advance` to continue it or `certrotate rollback` to undo it "
            "(in the wizard: n, or b)."
        )
    if kind.open is not None:  # the kind decides or stages for itself (ui: the operator's files; recover: expiry)
        if kind.observes_nodes:
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


def served_not_after(state: State) -> dict[str, dt.datetime | None]:
    """When the certificate each node serves ends (None: no sql_addr, or it did not answer), probed in parallel."""
    def probe(node) -> dt.datetime | None:
        if not node.sql_addr:
            return None
        try:
            return probe_sql(node.sql_addr, timeout=SERVED_PROBE_TIMEOUT).not_after
        except CertRotateError:
            return None

    nodes = list(state.inventory.nodes)
    if not nodes:
        return {}
    with ThreadPoolExecutor(max_workers=min(MAX_PARALLEL_HOSTS, len(nodes))) as pool:
        return dict(zip([n.name for n in nodes], pool.map(probe, nodes)))


# -- phases -----------------------------------------------------------------------------------


def _trust_checks(run: Run, new_ca: pki.Issued, old_ca: pki.Issued | None, *, old_trusted: bool) -> list[TrustCheck]:
    """The probes that prove a bundle is in use: the new CA trusted, the old one trusted (trust) or not (retire)."""
    if not run.authority.probes_prove_trust:
        return []
    return [TrustCheck(new_ca.fingerprint, True)] + ([TrustCheck(old_ca.fingerprint, old_trusted)] if old_ca else [])


def phase_trust(run: Run) -> Gate | None:
    rotated = signers_mod.rotation_bundles(run)
    old_ca = signers_mod.old_ca(run, rotated.before)
    checks = _trust_checks(run, rotated.new_ca, old_ca, old_trusted=True)
    allowed_before = [rotated.before.pem, _file_or_empty(run.authority.local_bundle)]
    gate = run.delivery.push_bundle(run, "trust", run.delivery.trust_bundle(rotated), allowed_before, checks)
    if gate:
        return gate
    deliver_bundle(run, "trust", rotated.combined)
    if run.dry_run:
        return None
    files.write_public(run.authority.local_bundle, rotated.combined, overwrite=True)
    lifecycle.enter_wait(run)
    return None


def _file_or_empty(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        return b""


def phase_wait(run: Run) -> Gate | None:
    holds_bundle = run.authority.clients_hold_bundle
    gate_confirm = (confirmation_gate(run, "trust_confirmed", "the new CA bundle and was restarted")
                    if holds_bundle else None)
    until = run.record_view().wait_until
    if until is not None and run.clock < until:
        why = ", so every client picks up the new bundle" if holds_bundle else ""
        shortened = run.record_view().wait_reason
        return Gate("schedule", f"leaf rotation waits {lifecycle.wait_days(run)} days after the trust rollout{why}"
                                + (f" ({shortened})" if shortened else ""), until=until)
    if gate_confirm:
        return gate_confirm
    if not run.dry_run:
        lifecycle.enter_phase(run, "leaf")
    return None


def phase_leaf(run: Run) -> Gate | None:
    kind = run.kind
    signers = signers_mod.leaf_signers(run) if kind.node_change is None else None
    first_bundles = _first_bundles(run, signers)
    if signers is not None:  # signer = "manual": every CSR is out before any node changes (core.rotation.signing_gate)
        waiting = awaiting_signatures(run, signers.node_ca, signers.client_ca,
                                      nodes_too=kind.node_leaves(run.inventory.cluster), clients_too=kind.client_leaves)
        if waiting:
            return waiting
    if kind.node_leaves(run.inventory.cluster):
        gate = run.delivery.push_node_leaves(run, signers, first_bundles)
        if gate:
            return gate
    if kind.client_leaves:
        deliver_client_leaves(run, signers.client_ca, ca_bundle=first_bundles.get(CA_CERT))
    if run.dry_run:
        return None
    if kind.rotates_ca:
        lifecycle.enter_phase(run, "retire")
        return None
    gate = confirmation_gate(run, "leaf_confirmed", "its new certificate and was restarted") if kind.client_leaves else None
    if gate:
        return gate
    if kind.installs_new_bundle:
        lifecycle.adopt_new_bundles(run, first_bundles)
    lifecycle.finish(run, "done")
    return None


def _first_bundles(run: Run, signers: signers_mod.LeafSigners | None) -> dict[str, bytes]:
    """A first install also puts the new CA bundle(s) on every node (and ca.crt on every client)."""
    if not run.kind.installs_new_bundle:
        return {}
    assert signers is not None and signers.node_ca is not None
    first = {CA_CERT: signers.node_ca.cert_pem}
    if run.inventory.cluster.has_client_ca:
        first[CLIENT_CA_CERT] = signers.client_ca.cert_pem
    return first


def phase_retire(run: Run) -> Gate | None:
    rotated = signers_mod.rotation_bundles(run)
    gate = confirmation_gate(run, "leaf_confirmed", "its new certificate and was restarted") or client_proof.retire_gate(run)
    if gate:
        return gate
    run.delivery.check_retire_safe(run)
    check_clients_hold_new_leaves(run)
    final = bundle.remove(rotated.combined, set(rotated.before.fingerprints))
    checks = _trust_checks(run, rotated.new_ca, signers_mod.old_ca(run, rotated.before), old_trusted=False)
    gate = run.delivery.push_bundle(run, "retire", final, [rotated.combined], checks)
    if gate:
        return gate
    deliver_bundle(run, "retire", final)
    if run.dry_run:
        return None
    lifecycle.close_retire(run, final, rotated.before)
    return None


PHASE_STEPS: dict[str, Callable[[Run], Gate | None]] = {
    "trust": phase_trust,
    "wait": phase_wait,
    "leaf": phase_leaf,
    "retire": phase_retire,
}


def advance(state: State, pool: SshPool, *, now: dt.datetime | None = None, yes: bool = False, dry_run: bool = False,
            report: Reporter = silent) -> Outcome:
    """Run every step that is ready; stop at a gate, at the end, or (raising StepFailed) at a failure."""
    if not state.rotation:
        return Outcome("idle", finished=False)
    delivery = deliveries.for_cluster(state.inventory.cluster)
    run = Run(state, pool, now=now, yes=yes, dry_run=dry_run, report=report, delivery=delivery)
    last_error.clear(run)
    phase = state.phase
    try:
        while state.rotation:
            phase = state.phase
            step = delivery.pending_step(state) or PHASE_STEPS[phase]
            gate = step(run)
            if run.dry_run:
                return _preview(run, phase, gate)
            run.contract.step_done(phase)
            if gate is not None:
                run.record("gate", detail=gate.reason)
                run.save()
                return Outcome(phase, gate=gate)
    except CertRotateError as error:
        last_error.remember(run, phase, error)
        raise
    return Outcome("idle", finished=True)


def _preview(run: Run, phase: str, gate: Gate | None) -> Outcome:
    """A dry run's outcome. At the wait gate it is the leaf step as it will run once the gate opens."""
    state = run.state
    held = None
    if phase == "wait" and run.delivery.pending_step(state) is None:
        held, phase = gate, "leaf"
        gate = phase_leaf(run)
    order = [n.name for n in state.inventory.nodes] + [client_key(c) for c in state.inventory.clients]
    order += [host for host in run.plans if host not in order]  # e.g. Kubernetes regions
    plans = {host: run.plans[host] for host in order if host in run.plans}
    plan_digest = contract.safe_remember_preview(run, phase, plans)
    return Outcome(phase, gate=gate, plan=plans, digest=plan_digest, held_by=held)


# -- operator confirmations --------------------------------------------------------------------


def confirm(state: State, items: list[str], confirm_key: str | None = None) -> None:
    """Record the operator's confirmations (the wizard's checklist) for the current gate."""
    items = deliveries.for_cluster(state.inventory.cluster).confirm(state, items)
    if not items:
        return
    key = confirm_key or current_confirm_key(state)
    if key is None:
        raise BadInput("Nothing is waiting for a confirmation.")
    clients = {client_key(c): c for c in state.inventory.clients}
    for item in items:
        if item not in clients:
            raise BadInput(f"No client {item!r} in the inventory.")
        RotationRecord(state.rotation).client_data(item)[key] = True
        state.record(f"confirmed {key}", at=pki.utcnow(), host=item, detail="operator")


def current_confirm_key(state: State) -> str | None:
    if state.phase == "retire":
        return proof_record.retire_confirm_key(state)  # deliveries first, then waivers of missing client proofs
    return confirm_key_for(state.phase)


# -- rollback ---------------------------------------------------------------------------------


def _title(kind_name: str | None) -> str:
    """How a sentence names a rotation kind: "first-time setup", not "init rotation"."""
    kind = kinds.lookup(kind_name)
    return kind.title if kind else f"{kind_name} rotation"


def rollback(state: State, pool: SshPool, *, report: Reporter = silent) -> Outcome:
    """Return every host to the files it had before the rotation, reload, verify; back to idle."""
    if not state.rotation:
        raise BadInput("No rotation is in flight; there is nothing to roll back.")
    return deliveries.for_cluster(state.inventory.cluster).rollback(state, pool, report)
