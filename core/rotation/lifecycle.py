"""A rotation's life between the steps: into the wait, into the next phase, closed out, finished.

These sit below the kinds and the deliveries and above the run, so every delivery closes a
phase the same way and the record always says the same things at the same moments.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

from core import files, pki
from core.config.record import client_key, history_entry
from core.errors import CertRotateError
from core.pki import bundle
from core.pki.certs_dir import client_cert_name, client_key_name
from core.remote import remote_files
from core.rotation import proof_record
from core.rotation.context import BACKUP_STEPS, Run, host_name, ssh_hosts


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
    finish(run, "done")


def finish(run: Run, outcome: str) -> None:
    """Close the rotation ("done" or "rolled back"): a history entry, the hosts' backups removed, back to idle."""
    if outcome == "done":
        _refresh_local_client_leaves(run)
    run.state.history.append(history_entry(run.rotation, pki.utcnow(), outcome) | proof_record.history_entry(run.rotation))
    run.record("finished", detail=f"{run.kind.name} rotation {run.rid}: {outcome}")
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
