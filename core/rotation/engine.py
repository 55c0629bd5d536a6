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

`start` is core.rotation.opening's, re-exported here: opening a rotation touches no host, so
`certrotate start` imports that module alone, without the SSH stack the steps below need.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Callable

from core import files, pki
from core.config.record import RotationRecord, client_key, confirm_key_for
from core.config.state import State
from core.errors import BadInput, CertRotateError
from core.pki import bundle
from core.pki.certs_dir import CA_CERT, CLIENT_CA_CERT
from core.remote.ssh import SshPool
from core.rotation import client_proof, contract, deliveries, last_error, lifecycle, proof_record
from core.rotation import signers as signers_mod
from core.rotation.clients import (
    check_clients_hold_new_leaves,
    confirmation_gate,
    deliver_bundle,
    deliver_client_leaves,
)
from core.rotation.context import Run
from core.rotation.kinds import FULL_PHASES
from core.rotation.model import Gate, Outcome, Reporter, silent
from core.rotation.opening import start
from core.rotation.plans import TrustCheck
from core.rotation.signing_gate import awaiting_signatures

PHASES = ("idle",) + FULL_PHASES

__all__ = ["PHASES", "Gate", "Outcome", "advance", "confirm", "current_confirm_key", "rollback", "start"]


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


def rollback(state: State, pool: SshPool, *, report: Reporter = silent) -> Outcome:
    """Return every host to the files it had before the rotation, reload, verify; back to idle."""
    if not state.rotation:
        raise BadInput("No rotation is in flight; there is nothing to roll back.")
    return deliveries.for_cluster(state.inventory.cluster).rollback(state, pool, report)
