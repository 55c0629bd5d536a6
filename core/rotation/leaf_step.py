"""One node's leaf step: its new certificates uploaded as one change, reloaded once, verified.

A node gets node.crt/node.key (not in a client CA rotation, which keeps node.crt) and, in
the split layout, client.node.crt/.key, all checked on the operator's machine first as the
node will check them. If the node does not serve (and accept) the new certificates, its
previous files go back from the step's backup and the rotation stops; a first install
has nothing to go back to and leaves the files for the next run to verify.
"""

from __future__ import annotations

from core import pki

from core.remote import remote_files
from core.rotation import key_on_node
from core.rotation.actions import ExpectAccepted
from core.pki.certs_dir import CA_CERT, NODE_CERT, NODE_KEY
from core.rotation.client_ca import CLIENT_CA_KIND, CLIENT_NODE_CERT, NodeLeafSet, check_node_leaf_set
from core.errors import CertRotateError, StepFailed, named
from core.rotation.executor import Progress
from core.config.inventory import NodeConfig
from core.rotation.plans import PUBLIC, HostFacts, plan_node_leaf
from core.remote.probes import wait_for_fingerprint
from core.rotation.context import DONE, Run
from core.remote.ssh import HostSession
from core.config.workspace import ensure_client_node_leaf, ensure_node_leaf


def node_leaves(run: Run, node: NodeConfig, node_ca: pki.Issued | None, client_ca: pki.Issued) -> NodeLeafSet:
    """node.crt (not when only the client CA changes) and, in the split layout, client.node.crt."""
    now = pki.utcnow()
    if node_ca is None or run.kind == CLIENT_CA_KIND:
        server = None
    elif key_on_node.wanted(run, node):  # the key is made on the node; only its CSR comes here
        server = key_on_node.node_leaf(run, node, node_ca, now=now)
    else:
        server = ensure_node_leaf(run.ws, run.rid, node_ca, node, now=now, dry_run=run.dry_run)
    client_node = (ensure_client_node_leaf(run.ws, run.rid, client_ca, node, now=now, dry_run=run.dry_run)
                   if run.inventory.cluster.split_node_certs else None)
    return NodeLeafSet(server, client_node)


def leaf_node(run: Run, node: NodeConfig, leaves: NodeLeafSet, first_bundles: dict[str, bytes],
              server_bundle: bytes, client_bundle: bytes) -> None:
    """One node's new leaves as one change: upload, reload once, verify; its previous files back on failure."""
    record = run.node_record(node.name)
    check_node_leaf_set(leaves, node_name=node.name, cluster=run.inventory.cluster, server_bundle=server_bundle,
                        client_bundle=client_bundle, now=pki.utcnow())
    session = run.session(node)
    base = node.certs_dir.rstrip("/")
    server, client_node = leaves.server, leaves.client_node
    bundle_pem = first_bundles.get(CA_CERT)
    extra = {name: (pem, PUBLIC) for name, pem in first_bundles.items() if name != CA_CERT} | leaves.extra_files()
    names = ([NODE_KEY, NODE_CERT] if server else []) + list(extra) + ([CA_CERT] if bundle_pem else [])
    facts = run.executor.observe(session, [f"{base}/{name}" for name in names], node.sql_addr)
    accepted = (ExpectAccepted(node.name, node.sql_addr, pki.NODE_USER, client_node.fingerprint, client_node.cert_pem,
                               client_node.key_pem),) if client_node and node.sql_addr else ()
    # Without a new node.crt (a client CA rotation) the node must go on serving the one it serves.
    actions = plan_node_leaf(node.name, node.certs_dir, facts, server.cert_pem if server else None,
                             server.key_pem if server else None,
                             server.fingerprint if server else facts.served_fingerprint, bundle_pem=bundle_pem,
                             reload=run.reload_command(node), sql_addr=node.sql_addr,
                             backup_id=f"{run.rid}.leaf", verified=record.get("leaf") == DONE, extra_files=extra,
                             accepted=accepted)
    run.report(Progress(node.name, "leaf", "running", "starting"))
    on_node = key_on_node.wanted(run, node) and run.kind != CLIENT_CA_KIND
    if on_node and run.dry_run:
        run.plans.setdefault(node.name, []).extend(key_on_node.preview_lines(run, node.name, node.certs_dir))
    try:
        if on_node and server is not None and actions and not run.dry_run:
            key_on_node.switch_key(run, node.name, node.certs_dir, session, f"{run.rid}.leaf")  # backed up, then renamed
        run.execute(node.name, session, actions, "leaf")
    except CertRotateError as error:
        if run.dry_run:
            raise
        if run.kind == "init":
            # A first install has nothing to go back to: the files stay, the node is started next.
            message = f"{named(node.name, error)} Its files are in place; once it runs, run advance again to verify it."
        else:
            restored = _restore_after_failed_leaf(run, node, session, facts)
            message = f"{named(node.name, error)} {restored} The rotation is stopped; fix the cause and run advance again."
        record["leaf"] = "failed"
        run.rotation["last_error"] = message
        run.record("leaf failed", host=node.name, detail=str(error))
        run.save()
        raise StepFailed(message) from None
    if not run.dry_run:
        done = {"leaf_fingerprint": server.fingerprint} if server else {}
        done |= {"client_node_fingerprint": client_node.fingerprint} if client_node else {}
        if record.get("leaf") != DONE or any(record.get(key) != value for key, value in done.items()):
            record.update({"leaf": DONE, "leaf_at": pki.utcnow(), **done})
        what = (f"serves the new certificate {server.fingerprint[:16]}…" if server else "keeps serving its certificate")
        run.report(Progress(node.name, "leaf", "ok", what + (f", accepts its new {CLIENT_NODE_CERT}" if client_node else "")))
        run.save()


def _restore_after_failed_leaf(run: Run, node: NodeConfig, session: HostSession, before: HostFacts) -> str:
    """Put the node's previous files back, reload, and check it serves what it served before."""
    try:
        restored = remote_files.restore(session, f"{run.rid}.leaf")
        session.reload(run.reload_command(node) or "true")
        if node.sql_addr and before.served_fingerprint:
            seen = wait_for_fingerprint(node.sql_addr, before.served_fingerprint, timeout=run.executor.verify_timeout)
            if seen != before.served_fingerprint:
                return "Its previous files were restored, but it does not serve its previous certificate yet; look at it now."
        run.record("leaf restored", host=node.name, detail=restored.summary())
        run.report(Progress(node.name, "leaf", "failed", "restored its previous certificate"))
        return "Its previous certificate was restored and it serves it again."
    except CertRotateError as error:
        return f"Restoring its previous files failed too ({error}); restore it by hand from the backup on the node."
