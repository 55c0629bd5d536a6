"""Files to every client: over SSH with its restart, or exported for the operator to deliver and confirm.

SSH clients get their files and restart; the others get an export under
local_certs_dir/export/<user>/ that the operator delivers and then confirms
(`confirmation_gate`: the wizard's checklist, or `advance --yes`).
"""

from __future__ import annotations

from core import pki
from core.config.inventory import ClientConfig
from core.config.record import client_key
from core.config.workspace import ensure_client_leaf
from core.errors import StepFailed
from core.pki.certs_dir import CA_CERT, client_cert_name, client_key_name
from core.rotation.context import Run
from core.rotation.model import DONE, ExportFiles, FileContent, Gate, Progress
from core.rotation.plans import PRIVATE, PUBLIC, plan_client_files


def deliver_bundle(run: Run, step: str, bundle_pem: bytes) -> None:
    """Clients check nodes against ca.crt: each gets the bundle of this step (not for ca-client.crt)."""
    for client in run.inventory.clients if run.authority.clients_hold_bundle else ():
        deliver_to_client(run, client, step, {CA_CERT: (bundle_pem, PUBLIC)}, confirm_key=f"{step}_confirmed")


def deliver_to_client(run: Run, client: ClientConfig, step: str, payload: dict[str, tuple[bytes, int]], *,
                      confirm_key: str) -> None:
    """SSH clients get the files (and their restart); the others get an export to confirm by hand."""
    record = run.client_record(client)
    label = client_key(client)
    if record.get(step) == DONE:
        run.report(Progress(label, step, "skipped", "already delivered"))
        return
    if client.delivered_over_ssh:
        session = run.session(client)
        paths = [f"{client.certs_dir.rstrip('/')}/{name}" for name in payload]
        facts = run.executor.observe(session, paths, None)
        actions = plan_client_files(label, client.certs_dir, facts, payload, restart=client.restart,
                                    backup_id=f"{run.rid}.{step}")
        run.execute(label, session, actions, step)
        if not run.dry_run:
            record[confirm_key] = True
    else:
        export = ExportFiles(label, run.ws.export_dir(client.user),
                             tuple(FileContent(name, content, mode) for name, (content, mode) in payload.items()))
        run.execute(label, None, [export], step)
    if not run.dry_run:
        record[step] = DONE
        record[f"{step}_at"] = pki.utcnow()
        run.report(Progress(label, step, "ok", "delivered" if client.delivered_over_ssh else
                            f"exported to {run.ws.relative(run.ws.export_dir(client.user))}; confirm delivery"))
        run.save()


def deliver_client_leaves(run: Run, client_ca: pki.Issued, *, ca_bundle: bytes | None = None) -> None:
    """Every client's new certificate and key, signed by `client_ca` (a first install adds its ca.crt)."""
    for client in run.inventory.clients:
        leaf = ensure_client_leaf(run.ws, run.rid, client_ca, client.user, now=pki.utcnow(), dry_run=run.dry_run)
        payload = {client_cert_name(client.user): (leaf.cert_pem, PUBLIC),
                   client_key_name(client.user): (leaf.key_pem, PRIVATE)}
        if ca_bundle:
            payload = {CA_CERT: (ca_bundle, PUBLIC), **payload}
        deliver_to_client(run, client, "leaf", payload, confirm_key="leaf_confirmed")
        if not run.dry_run:
            run.client_record(client)["leaf_fingerprint"] = leaf.fingerprint


def check_clients_hold_new_leaves(run: Run) -> None:
    """No client may still depend on the old CA's certificates when it is retired."""
    for client in run.inventory.clients:
        if run.client_record(client).get("leaf") != DONE:
            raise StepFailed(f"client {client_key(client)} has no new certificate yet; the old CA cannot be retired.")


def confirmation_gate(run: Run, confirm_key: str, what: str) -> Gate | None:
    """Manual clients must be confirmed by the operator (the wizard's checklist, or --yes)."""
    pending = [c for c in run.inventory.clients if not run.client_record(c).get(confirm_key)]
    if not pending:
        return None
    if run.yes and not run.dry_run:
        for client in pending:
            run.client_record(client)[confirm_key] = True
            run.record(f"confirmed {what}", host=client_key(client), detail="operator (--yes)")
        run.save()
        return None
    return Gate("confirm", f"confirm that every manually delivered client has {what}",
                items=tuple(client_key(c) for c in pending))
