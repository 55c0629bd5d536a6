"""Files to every client: over SSH with its restart, or exported for the operator to deliver and confirm.

SSH clients get their files and restart; the others get an export under
local_certs_dir/export/<user>/ that the operator delivers and then confirms
(`confirmation_gate`: the wizard's checklist, or `advance --yes`).
"""

from __future__ import annotations

from typing import Callable

from core import pki
from core.config.inventory import ClientConfig
from core.config.record import LEAF_CONFIRMED, client_key
from core.config.workspace import ensure_client_leaf
from core.errors import StepFailed
from core.pki.certs_dir import CA_CERT, client_cert_name, client_key_name
from core.remote.ssh import HostSession
from core.rotation import client_files, client_proof, key_on_node, linked_certs
from core.rotation.context import Run
from core.rotation.model import ExportFiles, FileContent, Gate, Progress
from core.rotation.plans import PUBLIC


def deliver_bundle(run: Run, step: str, bundle_pem: bytes) -> None:
    """Clients check nodes against ca.crt: each gets the bundle of this step (not for ca-client.crt)."""
    for client in run.inventory.clients if run.authority.clients_hold_bundle else ():
        deliver_to_client(run, client, step, client_files.bundle_payload(run, client, step, bundle_pem),
                          confirm_key=f"{step}_confirmed")


def deliver_to_client(run: Run, client: ClientConfig, step: str, payload: dict[str, tuple[bytes, int]], *,
                      confirm_key: str, before_write: Callable[[HostSession], None] | None = None) -> None:
    """SSH clients get the files (and their restart); the others get an export to confirm by hand."""
    record = run.client(client)
    label = client_key(client)
    if record.done(step):
        run.report(Progress(label, step, "skipped", "already delivered"))
        return
    if client.delivered_over_ssh:
        session = run.session(client)
        paths = [f"{client.certs_dir.rstrip('/')}/{name}" for name in payload]
        facts = run.executor.observe(session, paths, None)
        actions = linked_certs.plan_client_delivery(label, client.certs_dir, facts, payload, restart=client.restart,
                                                    backup_id=f"{run.rid}.{step}",
                                                    linked=linked_certs.observe(session, client.certs_dir))
        if before_write is not None and actions and not run.dry_run:
            before_write(session)  # key_on_host: the host's new key renamed into place first
        run.execute(label, session, actions, step)
        client_proof.prove_delivery(run, client, step)
        if not run.dry_run:
            record.confirm(confirm_key)  # certrotate delivered and restarted it: nothing for the operator to confirm
    else:
        export = ExportFiles(label, run.ws.export_dir(client.user),
                             tuple(FileContent(name, content, mode) for name, (content, mode) in payload.items()))
        run.execute(label, None, [export], step)
    if not run.dry_run:
        record.mark_done(step, pki.utcnow())
        export_dir = run.ws.relative(run.ws.export_dir(client.user))
        # The retire step ends the rotation: nothing is left to confirm, only the final bundle to hand over.
        todo = "give it the new bundle (nothing to confirm)" if step == "retire" else "confirm delivery"
        run.report(Progress(label, step, "ok", "delivered" if client.delivered_over_ssh else
                            f"exported to {export_dir}; {todo}"))
        run.save()


def deliver_client_leaves(run: Run, client_ca: pki.Issued, *, ca_bundle: bytes | None = None) -> None:
    """Every client's new certificate and key, signed by `client_ca` (a first install adds its ca.crt)."""
    for client in run.inventory.clients:
        if client.key_on_host and client.delivered_over_ssh:  # core.rotation.key_on_node: only a CSR leaves the host
            _deliver_key_on_host(run, client, client_ca, ca_bundle)
            continue
        leaf = ensure_client_leaf(run.ws, run.rid, client_ca, client.user, now=pki.utcnow(), dry_run=run.dry_run)
        payload = client_files.leaf_payload(run, client, leaf.cert_pem, leaf.key_pem, ca_bundle)
        deliver_to_client(run, client, "leaf", payload, confirm_key=LEAF_CONFIRMED)
        if not run.dry_run:
            run.client(client).mark_done("leaf", pki.utcnow(), leaf_fingerprint=leaf.fingerprint)


def _deliver_key_on_host(run: Run, client: ClientConfig, client_ca: pki.Issued, ca_bundle: bytes | None) -> None:
    """The client's host makes its key; its certificate (and a first install's ca.crt) go up, then its restart."""
    label = client_key(client)
    assert client.certs_dir is not None
    if run.client(client).done("leaf"):
        run.report(Progress(label, "leaf", "skipped", "already delivered"))
        return
    leaf = key_on_node.client_leaf(run, client, client_ca, label)
    if leaf is None:  # a dry run asks nothing of the host
        run.plans.setdefault(label, []).extend(key_on_node.preview_lines(
            run, label, client.certs_dir, client_key_name(client.user), client_cert_name(client.user)))
        return
    payload = ({CA_CERT: (ca_bundle, PUBLIC)} if ca_bundle else {}) | {client_cert_name(client.user): (leaf.cert_pem, PUBLIC)}
    deliver_to_client(run, client, "leaf", payload, confirm_key=LEAF_CONFIRMED, before_write=lambda session:
                      key_on_node.switch_key(run, label, client.certs_dir, session, f"{run.rid}.leaf",
                                             key_name=client_key_name(client.user),
                                             cert_name=client_cert_name(client.user)))
    if not run.dry_run:
        run.client(client).mark_done("leaf", pki.utcnow(), leaf_fingerprint=leaf.fingerprint)


def check_clients_hold_new_leaves(run: Run) -> None:
    """No client may still depend on the old CA's certificates when it is retired."""
    for client in run.inventory.clients:
        if not run.client(client).done("leaf"):
            raise StepFailed(f"client {client_key(client)} has no new certificate yet; the old CA cannot be retired.")


def confirmation_gate(run: Run, confirm_key: str, what: str) -> Gate | None:
    """Manual clients must be confirmed by the operator (the wizard's checklist, or --yes)."""
    pending = [c for c in run.inventory.clients if not run.client(c).confirmed(confirm_key)]
    if not pending:
        return None
    if run.yes and not run.dry_run:
        for client in pending:
            run.client(client).confirm(confirm_key)
            run.record(f"confirmed {what}", host=client_key(client), detail="operator (--yes)")
        run.save()
        return None
    return Gate("confirm", f"confirm that every manually delivered client has {what}",
                items=tuple(client_key(c) for c in pending))
