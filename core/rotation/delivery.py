"""Getting files to every host: a CA bundle to the nodes, region by region, and files to the clients.

`bundle_step` is the trust and retire steps on the nodes: each node is observed, must hold
either the bundle from before or the one being rolled out (anything else was changed by
hand), and gets only what is missing, then a reload and the probes that prove the bundle
is in use. Clients delivered over SSH get their files and restart; the others get an
export that the operator delivers and then confirms (`confirmation_gate`).
"""

from __future__ import annotations

import hashlib
from typing import Callable

from core import pki

from core.rotation import regions
from core.rotation.actions import ExportFiles, FileContent
from core.pki.certs_dir import CA_CERT, client_cert_name, client_key_name
from core.errors import StepFailed
from core.rotation.executor import Progress
from core.config.inventory import ClientConfig, NodeConfig
from core.remote.known_hosts import HostKeyChanged, UnknownHostKey
from core.remote.ssh import HostSession
from core.rotation.plans import PRIVATE, PUBLIC, TrustCheck, plan_bundle, plan_client_files
from core.rotation.context import DONE, Gate, Run, client_key
from core.config.workspace import ensure_client_leaf


def bundle_step(run: Run, step: str, bundle_pem: bytes, allowed_before: list[bytes], checks: list[TrustCheck]) -> None:
    """Put `bundle_pem` on every node (region by region, each region in parallel), reload, verify;
    then deliver it to every client."""
    wanted_sha = hashlib.sha256(bundle_pem).hexdigest()
    allowed = {hashlib.sha256(b).hexdigest() for b in allowed_before} | {wanted_sha}

    def node_work(node: NodeConfig) -> None:
        record = run.node_record(node.name)
        session = run.session(node)
        ca_path = f"{node.certs_dir.rstrip('/')}/{run.authority.bundle_file}"
        facts = run.executor.observe(session, [ca_path], node.sql_addr)
        if facts.files.get(ca_path) not in allowed:
            raise StepFailed(
                f"{node.name}: {ca_path} is neither the bundle certrotate knows from before this rotation nor "
                f"the one it is rolling out (it was changed by hand?); compare it with "
                f"{run.ws.relative(run.authority.local_bundle)} before going on."
            )
        if facts.served_fingerprint and "served_before" not in record and not run.dry_run:
            run.update_record(record, served_before=facts.served_fingerprint)
        actions = plan_bundle(node.name, node.certs_dir, facts, bundle_pem, reload=run.reload_command(node),
                              sql_addr=node.sql_addr, checks=checks, backup_id=f"{run.rid}.{step}",
                              verified=record.get(step) == DONE, bundle_file=run.authority.bundle_file)
        run.report(Progress(node.name, step, "running", "starting"))
        run.execute(node.name, session, actions, step)
        if not run.dry_run:
            if record.get(step) != DONE or record.get(f"{step}_bundle_sha256") != wanted_sha:
                run.update_record(record, **{step: DONE, f"{step}_at": pki.utcnow(), f"{step}_bundle_sha256": wanted_sha})
            run.report(Progress(node.name, step, "ok", "bundle in place and verified"))

    _region_by_region(run, step, node_work)
    for client in run.inventory.clients if run.authority.clients_hold_bundle else ():
        deliver_to_client(run, client, step, {CA_CERT: (bundle_pem, PUBLIC)}, confirm_key=f"{step}_confirmed")


def _region_by_region(run: Run, step: str, node_work: Callable[[NodeConfig], None]) -> None:
    """One region at a time, its nodes in parallel; a region that fails leaves the later ones untouched."""
    groups = regions.by_region(run.inventory.nodes)
    for index, (region, group) in enumerate(groups):
        announce = region is not None and not run.dry_run  # a dry run verifies nothing to announce
        if announce:
            run.report(regions.started(region, step, group))
        try:
            run.in_parallel(step, group, node_work, lambda n: n.name)
        except StepFailed as error:
            if region is None or isinstance(error, (UnknownHostKey, HostKeyChanged)):
                raise
            run.report(regions.failed(region, step))
            raise run.failure(regions.stopped_sentence(error, region, step, groups[index + 1:])) from error
        if announce:
            run.report(regions.finished(region, step, group))


def deliver_to_client(run: Run, client: ClientConfig, step: str, payload: dict[str, tuple[bytes, int]], *,
                      confirm_key: str, before_write: Callable[[HostSession], None] | None = None) -> None:
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
        if before_write is not None and actions and not run.dry_run:
            before_write(session)  # key_on_host: the host's new key renamed into place first
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
        if client.key_on_host and client.delivered_over_ssh:  # core.rotation.key_on_node: only a CSR leaves the host
            _deliver_key_on_host(run, client, client_ca, ca_bundle)
            continue
        leaf = ensure_client_leaf(run.ws, run.rid, client_ca, client.user, now=pki.utcnow(), dry_run=run.dry_run)
        payload = {client_cert_name(client.user): (leaf.cert_pem, PUBLIC),
                   client_key_name(client.user): (leaf.key_pem, PRIVATE)}
        if ca_bundle:
            payload = {CA_CERT: (ca_bundle, PUBLIC), **payload}
        deliver_to_client(run, client, "leaf", payload, confirm_key="leaf_confirmed")
        if not run.dry_run:
            run.client_record(client)["leaf_fingerprint"] = leaf.fingerprint


def _deliver_key_on_host(run: Run, client: ClientConfig, client_ca: pki.Issued, ca_bundle: bytes | None) -> None:
    from core.rotation import key_on_node

    label = client_key(client)
    assert client.certs_dir is not None
    if run.client_record(client).get("leaf") == DONE:
        run.report(Progress(label, "leaf", "skipped", "already delivered"))
        return
    leaf = key_on_node.client_leaf(run, client, client_ca, label)
    if leaf is None:  # a dry run asks nothing of the host
        run.plans.setdefault(label, []).extend(key_on_node.preview_lines(
            run, label, client.certs_dir, client_key_name(client.user), client_cert_name(client.user)))
        return
    payload = {client_cert_name(client.user): (leaf.cert_pem, PUBLIC)}
    if ca_bundle:
        payload = {CA_CERT: (ca_bundle, PUBLIC), **payload}
    deliver_to_client(run, client, "leaf", payload, confirm_key="leaf_confirmed", before_write=lambda session:
                      key_on_node.switch_key(run, label, client.certs_dir, session, f"{run.rid}.leaf",
                                             key_name=client_key_name(client.user),
                                             cert_name=client_cert_name(client.user)))
    if not run.dry_run:
        run.client_record(client)["leaf_fingerprint"] = leaf.fingerprint


def _unconfirmed(run: Run, confirm_key: str) -> list[ClientConfig]:
    return [c for c in run.inventory.clients if not run.client_record(c).get(confirm_key)]


def confirmation_gate(run: Run, confirm_key: str, what: str) -> Gate | None:
    """Manual clients must be confirmed by the operator (the wizard's checklist, or --yes)."""
    pending = _unconfirmed(run, confirm_key)
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
