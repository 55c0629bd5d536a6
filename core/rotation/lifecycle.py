"""A rotation's life between the steps: into the wait, into the next phase, closed out, finished.

These sit below the kinds and the deliveries and above the run, so every delivery closes a
phase the same way and the record always says the same things at the same moments.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

from core import files, pki
from core.config.inventory import ClientConfig
from core.config.record import client_key, history_entry
from core.errors import CertRotateError
from core.pki import bundle
from core.pki.certs_dir import client_cert_name, client_key_name
from core.remote import remote_files
from core.rotation import archive, discard, linked_certs, proof_record
from core.rotation.context import BACKUP_STEPS, Run, host_name, ssh_hosts
from core.rotation.model import Progress


def enter_phase(run: Run, phase: str, detail: str = "") -> None:
    run.record_view().enter(phase)
    run.record(f"phase {phase}", **({"detail": detail} if detail else {}))
    run.save()


def wait_days(run: Run) -> int:
    shortened = run.record_view().wait_days
    return run.inventory.cluster.leaf_delay_days if shortened is None else shortened


def enter_wait(run: Run) -> None:
    """The trust rollout is done: the leaf step may come `leaf_delay_days` (or the acknowledged shorter wait) from now."""
    finished = pki.utcnow()
    until = finished + dt.timedelta(days=wait_days(run))
    run.record_view().enter_wait(finished, until)
    run.record("phase wait", detail=f"leaf rotation not before {until:%Y-%m-%d %H:%M} UTC")
    run.save()


def adopt_new_bundles(run: Run, bundles: dict[str, bytes]) -> None:
    """A first install or a recovery installed new CA bundles: the operator's copies follow, and the
    inventory names the keys of any CA that took an expired one's place."""
    for name, pem in bundles.items():
        files.write_public(run.ws.local_certs_dir / name, pem, overwrite=True)
    if run.kind.new_ca != "replace":
        return
    record = run.record_view()
    fields = {"ca_key": record.new_ca["key"]}
    if record.new_client_ca:
        fields["client_ca_key"] = record.new_client_ca["key"]
    state = run.state
    state.inventory = dataclasses.replace(state.inventory, cluster=dataclasses.replace(state.inventory.cluster, **fields))
    run.record("replaced expired CA", detail=", ".join(f"{field} = {path}" for field, path in fields.items()))


def _refresh_local_client_leaves(run: Run) -> None:
    """The client certificates kept in local_certs_dir (as `cert create-client` writes them) follow the rotation,
    so `cert list` and `check` judge what the clients hold now, not what they held before."""
    for client in run.inventory.clients:
        issued = run.ws.rotation_dir(run.rid) / "clients" / client.user
        cert_name, key_name = client_cert_name(client.user), client_key_name(client.user)
        local_cert = run.ws.local_certs_dir / cert_name
        if not (local_cert.exists() and (issued / cert_name).exists() and (issued / key_name).exists()):
            continue
        files.write_private(run.ws.local_certs_dir / key_name, (issued / key_name).read_bytes(), overwrite=True)
        files.write_public(local_cert, (issued / cert_name).read_bytes(), overwrite=True)
        run.record("local copy refreshed", host=client_key(client), path=run.ws.relative(local_cert))


def close_retire(run: Run, final: bytes, old_bundle: bundle.Bundle) -> None:
    """Every node holds `final`: the local bundle follows, the inventory names the new CA key, the rotation ends."""
    files.write_public(run.authority.local_bundle, final, overwrite=True)
    new_key = run.record_view().new_ca["key"]
    state = run.state
    state.inventory = dataclasses.replace(
        state.inventory, cluster=dataclasses.replace(state.inventory.cluster, **{run.authority.key_field: new_key}))
    run.record("retired old CA", detail=", ".join(fp[:16] for fp in old_bundle.fingerprints))
    finish(run, "done", _archive_old_key(run))


def _archive_old_key(run: Run) -> dict[str, str]:
    """The old CA key into `retired/` beside it (core.rotation.archive); the history says where."""
    if run.inventory.cluster.signer != "local":
        return {}  # the old key is in the token or with the organisation's CA: not a file of ours to move
    old_key = run.authority.key_path
    # The other CA's key stays in force (it may even be the same file, when one key serves both).
    other = run.ws.client_ca_key_path if run.authority.key_field == "ca_key" else run.ws.ca_key_path
    in_use = {run.ws.base_dir / run.record_view().new_ca["key"]} | ({other} if other else set())
    try:
        moved = archive.archive_key(old_key, run.rid, in_use)
    except CertRotateError as error:
        run.record("old CA key kept", path=run.ws.relative(old_key), detail=str(error))
        run.report(Progress(discard.LOCAL, "retire", "warning", str(error), heading=True))
        return {}
    if moved is None:
        return {}
    where = run.ws.relative(moved)
    run.record("archived old CA key", path=where)
    run.report(Progress(discard.LOCAL, "retire", "ok", f"old CA key moved to {where} (directory 0700, key 0600)",
                        heading=True))
    return {"retired_ca_key": where}


def finish(run: Run, outcome: str, recorded: dict | None = None) -> None:
    """Close the rotation ("done" or "rolled back"): a history entry, the hosts' backups removed, back to idle.

    A rollback also removes what the rotation made on the operator's side (core.rotation.discard)."""
    recorded = dict(recorded or {})
    if outcome == "done":
        _refresh_local_client_leaves(run)
    else:
        removed = discard.discard(run.state, run.report)
        for path in removed:
            run.record("rollback: removed", path=path)
        if removed:
            recorded["removed"] = removed
    run.state.history.append(history_entry(run.rotation, pki.utcnow(), outcome) | proof_record.history_entry(run.rotation)
                             | recorded)
    run.record("finished", detail=f"{run.kind.name} rotation {run.rid}: {outcome}")
    # The backups hold the old private keys; once the rotation is over nothing may restore them.
    for host in ssh_hosts(run.inventory):
        try:
            session = run.session(host)
            if isinstance(host, ClientConfig):  # a symlinked certs dir's superseded versions (linked_certs)
                for detail in linked_certs.clean_up(session, host.certs_dir):
                    run.record("versions", host=host_name(host), detail=detail)
                    run.report(Progress(host_name(host), "finish", "running", detail))
            for step in BACKUP_STEPS:
                remote_files.remove_backup(session, f"{run.rid}.{step}")
        except CertRotateError as error:
            run.record("backup kept", host=host_name(host), detail=str(error))
    run.state.rotation = {}
    run.rotation = {}
    run.save()
