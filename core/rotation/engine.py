"""The rotation runbook as code: phases, gates, and a resumable `advance`.

A CA rotation (`start ca`) goes trust → wait → leaf → retire → idle (SPEC.md); so does a client
CA rotation (`start client-ca`), on ca-client.crt instead of ca.crt (core.rotation.client_ca). `start init`,
`start nodes` and `start clients` are a single `leaf` phase. `advance` runs every step that
is ready, in order, and stops at a gate: a schedule date or an operator confirmation.

Every step observes the hosts first and plans only what is missing (core.rotation.plans), so a
run killed at any instant is finished by running `advance` again. The state file is saved
after every host, so its record is never ahead of the nodes by more than one host step,
and a step that is recorded done is re-checked cheaply rather than trusted blindly.

This module reads top to bottom as the runbook; the parts it is made of live beside it:
core.rotation.context (Run, Gate, Outcome), core.rotation.signers (the new and old CA, the bundles),
core.rotation.delivery (a bundle to every node, files to every client, client confirmations),
core.rotation.leaf_step (one node's new leaves) and core.rotation.restore. Kubernetes delivery
(core.rotation.deliveries.kubernetes) and the UI certificate (core.rotation.kinds.ui) plug in here.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path
from typing import Any, Callable

from core import files, pki

from core.pki import bundle

from core.rotation import signers as ca_material
from core.signers import select as signer_select
from core.signers.identity import check_identities

from core.rotation import regions

from core.remote import remote_files
from core.rotation import restore as rollback_mod
from core.pki.certs_dir import CA_CERT, CLIENT_CA_CERT
from core.rotation.client_ca import CLIENT_CA_KIND, CLIENT_NODE_CERT, check_can_start_client_ca
from core.rotation.delivery import bundle_step, confirmation_gate, deliver_client_leaves
from core.errors import BadInput, CertRotateError, StepFailed
from core.rotation.executor import Reporter, silent
from core.rotation.leaf_step import leaf_node, node_leaves
from core.rotation.plans import TrustCheck
from core.rotation.signing_gate import awaiting_signatures
from core.remote.probes import probe_sql
from core.rotation.context import BACKUP_STEPS, DONE, Gate, Outcome, Run, client_key, host_name, ssh_hosts
from core.remote.ssh import SshPool
from core.config.state import State
from core.config.workspace import Workspace

# What tui/, the tests, core.rotation.deliveries.kubernetes and core.rotation.kinds.ui use from here.
__all__ = ["CA_KINDS", "DONE", "KINDS", "PHASES", "Gate", "Outcome", "Run", "advance", "check_clients_hold_new_leaves",
           "client_key", "close_retire", "confirm", "current_confirm_key", "enter_wait", "finish", "phase_leaf",
           "phase_wait", "rollback", "rotation_id_for", "start"]

KINDS = ("init", "ca", "nodes", "clients", CLIENT_CA_KIND, "ui")
CA_KINDS = ("ca", CLIENT_CA_KIND)  # the kinds that go trust → wait → leaf → retire
PHASES = ("idle", "trust", "wait", "leaf", "retire")


def rotation_id_for(kind: str, now: dt.datetime) -> str:
    return f"{now:%Y%m%dT%H%M%SZ}-{kind}"


# -- start ------------------------------------------------------------------------------------


def start(state: State, kind: str, *, now: dt.datetime | None = None, **options: Any) -> dict[str, Any]:
    """Open a rotation of `kind`; refuses while another is in flight. Nothing is touched yet."""
    if kind not in KINDS:
        raise BadInput(f"Unknown rotation {kind!r}; choose one of {', '.join(KINDS)}.")
    if state.inventory.cluster.on_kubernetes:
        from core.rotation.deliveries import kubernetes as kubernetes_rotation
        kubernetes_rotation.check_start(kind)
    if state.rotation:
        raise BadInput(
            f"A {state.rotation.get('kind')} rotation ({state.rotation.get('id')}) is already in phase "
            f"{state.phase}; run `advance` to continue it or `rollback` to undo it."
        )
    if kind == "ui":  # a bring-your-own DB Console certificate (core.rotation.kinds.ui); options: cert_path, key_path
        from core.rotation.kinds import ui as ui_cert
        return ui_cert.start(state, **options)
    real_now = pki.utcnow()
    ws = Workspace(state.base_dir, state.inventory.cluster)
    organisation_ca = signer_select.check_start(ws, kind, options.get("new_ca"))  # start ca --new-ca FILE
    if not state.inventory.cluster.on_kubernetes:
        check_identities(state.inventory)  # no certificate that would lock a user or a node out
    if kind == "init":
        client_ca_files = [ws.client_ca_key_path, ws.client_bundle_path] if ws.client_ca_key_path else []
        for existing in [ws.ca_key_path, ws.bundle_path] + client_ca_files:
            if existing.exists():
                raise BadInput(
                    f"{ws.relative(existing)} already exists; `start init` is for a cluster without certificates. "
                    "Use `start ca` (or `start client-ca`) to rotate an existing CA."
                )
    elif kind == CLIENT_CA_KIND:
        check_can_start_client_ca(ws)
    else:
        ca_bundle = bundle.parse_bundle(ws.read_bundle(), ws.relative(ws.bundle_path))
        if kind in ("nodes", "clients"):
            ws.current_ca()  # the CA key must be here and match, or nothing can be issued
            if kind == "clients" or state.inventory.cluster.split_node_certs:
                ws.current_client_ca()  # likewise the one that signs client certificates and client.node.crt
        expired = ca_bundle.expired(real_now)
        if kind == "ca" and expired and len(expired) == len(ca_bundle.entries):
            raise BadInput("Every CA in the local bundle has expired; the cluster trusts nothing valid. Use `start init`.")
    rotation_id = rotation_id_for(kind, real_now)
    state.rotation = {"id": rotation_id, "kind": kind, "phase": "trust" if kind in CA_KINDS else "leaf", "started": real_now}
    if organisation_ca is not None:  # the new CA is the organisation's: found there by core.signers.select.rotation_ca
        files.write_public(ws.rotation_dir(rotation_id) / CA_CERT, organisation_ca, overwrite=False)
    state.record("start", at=real_now, detail=f"{kind} rotation {rotation_id}")
    return state.rotation


# -- phases -----------------------------------------------------------------------------------


def phase_trust(run: Run) -> Gate | None:
    combined, old_bundle, new_ca = ca_material.rotation_bundles(run)
    old_ca = ca_material.old_ca(run, old_bundle)
    checks = [TrustCheck(new_ca.fingerprint, True)] + ([TrustCheck(old_ca.fingerprint, True)] if old_ca else [])
    checks = checks if run.authority.probes_prove_trust else []
    bundle_step(run, "trust", combined, [old_bundle.pem, _file_or_empty(run.authority.local_bundle)], checks)
    if run.dry_run:
        return None
    files.write_public(run.authority.local_bundle, combined, overwrite=True)
    enter_wait(run)
    return None


def enter_wait(run: Run) -> None:
    """The trust rollout is done: the leaf step may come `leaf_delay_days` from now."""
    finished = pki.utcnow()
    run.rotation["trust_done_at"] = finished
    run.rotation["wait_until"] = finished + dt.timedelta(days=run.inventory.cluster.leaf_delay_days)
    run.rotation["phase"] = "wait"
    run.record("phase wait", detail=f"leaf rotation not before {run.rotation['wait_until']:%Y-%m-%d %H:%M} UTC")
    run.save()


def _file_or_empty(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        return b""


def phase_wait(run: Run) -> Gate | None:
    gate_confirm = (confirmation_gate(run, "trust_confirmed", "the new CA bundle and was restarted")
                    if run.authority.clients_hold_bundle else None)
    until = run.rotation["wait_until"]
    if run.clock < until:
        why = ", so every client picks up the new bundle" if run.authority.clients_hold_bundle else ""
        return Gate("schedule", f"leaf rotation waits {run.inventory.cluster.leaf_delay_days} days after the trust "
                                f"rollout{why}", until=until)
    if gate_confirm:
        return gate_confirm
    if not run.dry_run:
        run.rotation["phase"] = "leaf"
        run.record("phase leaf")
        run.save()
    return None


def phase_leaf(run: Run) -> Gate | None:
    if run.kind == "ui":
        from core.rotation.kinds import ui as ui_cert
        return ui_cert.phase_ui(run)
    signers = ca_material.leaf_signers(run)
    ca, client_ca = signers.node_ca, signers.client_ca
    split = run.inventory.cluster.split_node_certs
    nodes_too = run.kind in ("ca", "nodes", "init") or (run.kind == CLIENT_CA_KIND and split)
    clients_too = run.kind in ("ca", "clients", "init", CLIENT_CA_KIND)
    waiting = awaiting_signatures(run, ca, client_ca, nodes_too=nodes_too, clients_too=clients_too)
    if waiting:
        return waiting  # signer = "manual": CSRs are out, certificates missing (core.rotation.signing_gate)
    first_bundles = _first_bundles(run, signers)
    if nodes_too:
        _leaf_nodes(run, signers, first_bundles)
    if clients_too:
        deliver_client_leaves(run, client_ca, ca_bundle=first_bundles.get(CA_CERT))
    if run.dry_run:
        return None
    if run.kind in CA_KINDS:
        run.rotation["phase"] = "retire"
        run.record("phase retire")
        run.save()
        return None
    gate = confirmation_gate(run, "leaf_confirmed", "its new certificate and was restarted") if clients_too else None
    if gate:
        return gate
    if run.kind == "init":
        files.write_public(run.ws.bundle_path, ca.cert_pem, overwrite=True)
        if CLIENT_CA_CERT in first_bundles:
            files.write_public(run.ws.client_bundle_path, client_ca.cert_pem, overwrite=True)
    finish(run, "done")
    return None


def _first_bundles(run: Run, signers: ca_material.LeafSigners) -> dict[str, bytes]:
    """A first install also puts the new CA bundle(s) on every node (and ca.crt on every client)."""
    if run.kind != "init":
        return {}
    assert signers.node_ca is not None
    first = {CA_CERT: signers.node_ca.cert_pem}
    if run.inventory.cluster.has_client_ca:
        first[CLIENT_CA_CERT] = signers.client_ca.cert_pem
    return first


def _leaf_nodes(run: Run, signers: ca_material.LeafSigners, first_bundles: dict[str, bytes]) -> None:
    """Node by node, canary first: the first node that fails stops the rollout (a first install goes on)."""
    server_bundle, client_bundle = ca_material.leaf_trust_bundles(run, signers)
    failures = []
    order = regions.rollout_order(run.inventory.nodes)
    for node in order if run.kind == "init" or run.dry_run else regions.announce(order, "leaf", run.report):
        try:
            leaves = node_leaves(run, node, signers.node_ca, signers.client_ca)
            leaf_node(run, node, leaves, first_bundles, server_bundle, client_bundle)
        except StepFailed as error:
            if run.kind != "init":
                sentence = regions.stopped(error, node, run.inventory.nodes, "leaf", run.report)
                raise (run.failure(sentence) if sentence else error) from None
            failures.append(str(error))  # a first install serves nothing yet: install everywhere
    if failures:
        more = f" ({len(failures) - 1} more node(s) likewise)" if len(failures) > 1 else ""
        raise StepFailed(failures[0] + more)


def phase_retire(run: Run) -> Gate | None:
    combined, old_bundle, new_ca = ca_material.rotation_bundles(run)
    gate = confirmation_gate(run, "leaf_confirmed", "its new certificate and was restarted")
    if gate:
        return gate
    _check_nothing_depends_on_old_ca(run)
    final = bundle.remove(combined, set(old_bundle.fingerprints))
    old_ca = ca_material.old_ca(run, old_bundle)
    checks = [TrustCheck(new_ca.fingerprint, True)] + ([TrustCheck(old_ca.fingerprint, False)] if old_ca else [])
    checks = checks if run.authority.probes_prove_trust else []
    bundle_step(run, "retire", final, [combined], checks)
    if run.dry_run:
        return None
    close_retire(run, final, old_bundle)
    return None


def close_retire(run: Run, final: bytes, old_bundle: bundle.Bundle) -> None:
    """Every node holds `final`: the local bundle follows, the inventory names the new CA key, the rotation ends."""
    files.write_public(run.authority.local_bundle, final, overwrite=True)
    new_key = run.rotation["new_ca"]["key"]
    state = run.state
    state.inventory = dataclasses.replace(
        state.inventory, cluster=dataclasses.replace(state.inventory.cluster, **{run.authority.key_field: new_key}))
    run.record("retired old CA", detail=", ".join(fp[:16] for fp in old_bundle.fingerprints))
    finish(run, "done")


def _check_nothing_depends_on_old_ca(run: Run) -> None:
    """Retiring is safe only when every node serves its new leaf and every client holds one."""
    for node in run.inventory.nodes:
        record = run.node_record(node.name)
        if run.kind == CLIENT_CA_KIND:
            # node.crt comes from the node CA and stays; only client.node.crt depends on the client CA.
            if run.inventory.cluster.split_node_certs and record.get("leaf") != DONE:
                raise StepFailed(f"{node.name} has no new {CLIENT_NODE_CERT} recorded; the old client CA cannot be "
                                 "retired yet.")
            continue
        expected = record.get("leaf_fingerprint")
        if record.get("leaf") != DONE or not expected:
            raise StepFailed(f"{node.name} has no new certificate recorded; the old CA cannot be retired yet.")
        if node.sql_addr:
            served = probe_sql(node.sql_addr).fingerprint
            if served != expected:
                raise StepFailed(
                    f"{node.name} serves certificate {served[:16]}…, not its new one {expected[:16]}…; retiring the "
                    "old CA now would break it. Find out what changed on the node."
                )
    check_clients_hold_new_leaves(run)


def check_clients_hold_new_leaves(run: Run) -> None:
    """No client may still depend on the old CA's certificates when it is retired."""
    for client in run.inventory.clients:
        if run.client_record(client).get("leaf") != DONE:
            raise StepFailed(f"client {client_key(client)} has no new certificate yet; the old CA cannot be retired.")


def finish(run: Run, outcome: str) -> None:
    """Close the rotation ("done" or "rolled back"): a history entry, the hosts' backups removed, back to idle."""
    finished = pki.utcnow()
    entry = {key: value for key, value in run.rotation.items() if key in ("id", "kind", "started", "new_ca")}
    entry.update({"finished": finished, "outcome": outcome})
    run.state.history.append(entry)
    run.record("finished", detail=f"{run.kind} rotation {run.rid}: {outcome}")
    # The backups hold the old private keys; once the rotation is over nothing may restore them.
    for host in ssh_hosts(run.inventory):
        try:
            session = run.session(host)
            for step in BACKUP_STEPS:
                remote_files.remove_backup(session, f"{run.rid}.{step}")
        except CertRotateError as error:
            run.record("backup kept", host=host_name(host), detail=str(error))
    run.state.rotation = {}
    run.rotation = {}
    run.save()


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
    run = Run(state, pool, now=now, yes=yes, dry_run=dry_run, report=report)
    run.rotation.pop("last_error", None)
    while state.rotation:
        phase = state.phase
        if state.inventory.cluster.on_kubernetes:
            from core.rotation.deliveries import kubernetes as kubernetes_rotation
            gate = kubernetes_rotation.phase_steps(state)[phase](run)
        else:
            gate = PHASE_STEPS[phase](run)
        if run.dry_run:
            order = [n.name for n in state.inventory.nodes] + [client_key(c) for c in state.inventory.clients]
            order += [host for host in run.plans if host not in order]  # e.g. Kubernetes regions
            plans = {host: run.plans[host] for host in order if host in run.plans}
            return Outcome(phase, gate=gate, plan=plans)
        if gate is not None:
            run.record("gate", detail=gate.reason)
            run.save()
            return Outcome(phase, gate=gate)
    return Outcome("idle", finished=True)


# -- operator confirmations --------------------------------------------------------------------


def confirm(state: State, items: list[str], confirm_key: str | None = None) -> None:
    """Record the operator's confirmations (the wizard's checklist) for the current gate."""
    if state.inventory.cluster.on_kubernetes:
        from core.rotation.deliveries import kubernetes as kubernetes_rotation
        items = kubernetes_rotation.confirm(state, items)  # region gates; what is left are clients
        if not items:
            return
    key = confirm_key or current_confirm_key(state)
    if key is None:
        raise BadInput("Nothing is waiting for a confirmation.")
    clients = {client_key(c): c for c in state.inventory.clients}
    for item in items:
        if item not in clients:
            raise BadInput(f"No client {item!r} in the inventory.")
        state.rotation.setdefault("clients", {}).setdefault(item, {})[key] = True
        state.record(f"confirmed {key}", at=pki.utcnow(), host=item, detail="operator")


def current_confirm_key(state: State) -> str | None:
    phase = state.phase
    if phase in ("trust", "wait"):
        return "trust_confirmed"
    if phase in ("leaf", "retire"):
        return "leaf_confirmed"
    return None


# -- rollback ---------------------------------------------------------------------------------


def rollback(state: State, pool: SshPool, *, report: Reporter = silent) -> Outcome:
    """Return every host to the files it had before the rotation, reload, verify; back to idle."""
    if not state.rotation:
        raise BadInput("No rotation is in flight; there is nothing to roll back.")
    if state.inventory.cluster.on_kubernetes:
        from core.rotation.deliveries import kubernetes as kubernetes_rotation
        return kubernetes_rotation.rollback(state, pool, report=report)
    run = Run(state, pool, now=None, yes=True, dry_run=False, report=report)
    rollback_mod.restore_everything(run)
    finish(run, "rolled back")
    return Outcome("idle", finished=True)
