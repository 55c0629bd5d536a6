"""Rolling back over SSH: every host gets the files it had before the rotation, reloads, and is verified.

Each step backed up what it replaced into `<rotation id>.<step>` on the host; the backups
are restored latest step first, so a host ends with the files from before the first step
that touched it. Nodes are then reloaded and must serve the certificate they served before
the rotation; SSH clients are restarted. The operator's local bundle goes back as well.
Closing the rotation (`finish`) is the engine's.
"""

from __future__ import annotations

from core import files

from core.remote import remote_files
from core.errors import CertRotateError, StepFailed
from core.rotation.executor import Progress
from core.config.inventory import ClientConfig, NodeConfig
from core.remote.probes import wait_for_fingerprint
from core.rotation import untouched
from core.rotation.context import BACKUP_STEPS, Run, host_name, ssh_hosts


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
        run.rotation["last_error"] = failures[0]
        run.save()
        raise StepFailed(f"rollback: {failures[0]}" + (f" ({len(failures) - 1} more)" if len(failures) > 1 else ""))


def rollback_host(run: Run, host: NodeConfig | ClientConfig, name: str) -> None:
    """One host's backups restored, latest step first; a node reloaded and checked, a client restarted."""
    session = run.session(host)
    touched = False
    for step in reversed(BACKUP_STEPS):
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
    expected = run.node_record(host.name).get("served_before")
    if host.sql_addr and expected:
        seen = wait_for_fingerprint(host.sql_addr, expected, timeout=run.executor.verify_timeout)
        if seen != expected:
            raise StepFailed(f"{name} was restored but serves {seen[:16]}…, not its previous certificate {expected[:16]}….")
    if run.kind == "ui":
        from core.rotation.kinds import ui as ui_cert
        ui_cert.verify_rolled_back(run, host)
    run.report(Progress(name, "rollback", "ok", "previous files restored and served"))
