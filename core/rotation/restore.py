"""Putting a host's previous files back: after a failed leaf step, and for a whole rollback.

Each step backed up what it replaced into `<rotation id>.<step>` on the host. After a node
failed its leaf step, that step's backup comes back and the node must serve again what it
served before. A rollback restores every host's backups latest step first, so a host ends
with the files from before the first step that touched it; nodes are then reloaded and
must serve what they served before the rotation, SSH clients are restarted. Closing the
rotation (`finish`) is the lifecycle's.
"""

from __future__ import annotations

from core import files
from core.config.inventory import ClientConfig, NodeConfig
from core.errors import CertRotateError, StepFailed
from core.remote import remote_files
from core.remote.probes import wait_for_fingerprint
from core.remote.ssh import HostSession
from core.rotation import linked_certs, untouched
from core.rotation.context import BACKUP_STEPS, Run, host_name, ssh_hosts
from core.rotation.model import PROBES, Probe, Progress


def after_failed_step(run: Run, node: NodeConfig, session: HostSession, step: str, probe: Probe, before: str | None,
                      journal: str) -> str:
    """Put the node's previous files back, reload, and check it serves what it served before; a sentence says how it went."""
    address = probe.address(node)
    try:
        restored = remote_files.restore(session, f"{run.rid}.{step}")
        session.reload(run.reload_command(node) or "true")
        if address and before:
            seen = wait_for_fingerprint(address, before, timeout=run.executor.verify_timeout,
                                        postgres_preamble=not probe.direct_tls)
            if seen != before:
                return (f"Its previous files were restored, but {probe.listener} does not serve its previous "
                        "certificate yet; look at it now.")
        run.record(f"{journal} restored", host=node.name, detail=restored.summary())
        run.report(Progress(node.name, step, "failed", f"restored its previous {probe.what}"))
        if not (address and before):
            return "Its previous files were restored."
        return f"Its previous {probe.what} was restored and it serves it again."
    except CertRotateError as error:
        return f"Restoring its previous files failed too ({error}); restore it by hand from the backup on the node."


def restore_everything(run: Run) -> None:
    """Every SSH host and the local bundle back as before the rotation; StepFailed names the hosts that are not."""
    failures: list[str] = []
    for host in ssh_hosts(run.inventory):
        name = host_name(host)
        try:
            rollback_host(run, host, name)
        except CertRotateError as error:
            if not untouched.touched(run.state, name):
                run.report(Progress(name, "rollback", "skipped", untouched.skipped_line(name, error)))
                run.record("rollback: skipped", host=name, detail="untouched by the rotation and unreachable")
                continue
            failures.append(str(error))
            run.report(Progress(name, "rollback", "failed", str(error)))
    before = run.ws.rotation_dir(run.rid) / run.authority.before_name
    if before.exists():
        files.write_public(run.authority.local_bundle, before.read_bytes(), overwrite=True)
    if failures:
        run.record_view().last_error = failures[0]
        run.save()
        raise StepFailed(f"rollback: {failures[0]}" + (f" ({len(failures) - 1} more)" if len(failures) > 1 else ""))


def rollback_host(run: Run, host: NodeConfig | ClientConfig, name: str) -> None:
    """One host's backups restored, latest step first; a node reloaded and checked, a client restarted."""
    session = run.session(host)
    touched = False
    for step in reversed(BACKUP_STEPS):
        relinked = isinstance(host, ClientConfig) and linked_certs.restore(session, host.certs_dir, f"{run.rid}.{step}")
        if relinked:  # a certs dir that is a symlink: the version from before the step (linked_certs)
            touched = True
            run.record("rollback: link restored", host=name, detail=f"{relinked}, as before the {step} step")
        if remote_files.read_manifest(session, f"{run.rid}.{step}") is not None:
            remote_files.restore(session, f"{run.rid}.{step}")
            touched = True
            run.record("rollback: restored", host=name, detail=f"files from before the {step} step")
    if not touched:
        run.report(Progress(name, "rollback", "skipped", "nothing to restore"))
        return
    if isinstance(host, ClientConfig):
        if host.restart:
            session.run(host.restart)
        run.report(Progress(name, "rollback", "ok", "files restored"))
        return
    session.reload(run.reload_command(host) or "true")
    record = run.node_record(host.name)
    for probe in PROBES:  # what it served before the rotation, wherever that was recorded
        address, expected = probe.address(host), record.get(probe.served_before_key)
        if not (address and expected):
            continue
        seen = wait_for_fingerprint(address, expected, timeout=run.executor.verify_timeout,
                                    postgres_preamble=not probe.direct_tls)
        if seen != expected:
            raise StepFailed(f"{name} was restored but serves {seen[:16]}… on {address}, not its previous "
                             f"{probe.what} {expected[:16]}….")
    run.report(Progress(name, "rollback", "ok", "previous files restored and served"))
