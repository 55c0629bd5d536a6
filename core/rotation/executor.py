"""Apply planned actions to hosts over SSH, and observe hosts for the planner.

The executor is the only part of the engine that touches the network: it reads remote
hashes and served certificates (`observe`), and performs WriteFiles / RunCommand /
ExpectServed / ExpectTrust / ExpectAccepted / ExportFiles (`apply`), reporting each through a callback.
A reload is judged by what the node serves afterwards, never by its exit code.
"""

from __future__ import annotations

import datetime as dt
import posixpath
import time
from pathlib import Path

from cryptography import x509

from core import files
from core.errors import CertRotateError, StepFailed
from core.pki import Issued
from core.pki.keys import load_private_key
from core.remote import probes, remote_files
from core.remote.ssh import HostSession, SshPool
from core.rotation import linked_certs, trust_probes
from core.rotation.model import (
    Action,
    ExpectAccepted,
    ExpectServed,
    ExpectTrust,
    ExportFiles,
    Progress,
    Reporter,
    RunCommand,
    SwapLinkedDir,
    WriteFiles,
    silent,
)
from core.rotation.plans import HostFacts

VERIFY_TIMEOUT = 15.0
CLOCK_WARNING = dt.timedelta(minutes=5)
MAX_CLOCK_SKEW = dt.timedelta(hours=23)  # certificates are backdated 24 h (pki.BACKDATE); keep a margin


class Executor:
    def __init__(self, pool: SshPool, report: Reporter = silent, *, probe_cas: dict[str, Issued] | None = None,
                 verify_timeout: float = VERIFY_TIMEOUT):
        self.pool = pool
        self.report = report
        self.probe_cas = dict(probe_cas or {})
        self.verify_timeout = verify_timeout
        self.probe_clients = trust_probes.ProbeClients()
        self._swept: set[tuple[str, str]] = set()
        self.served_seen: dict[str, str] = {}  # host -> the leaf its last trust probe saw it serve
        self._clocks_checked: set[str] = set()

    # -- observe -----------------------------------------------------------------------

    def observe(self, session: HostSession, paths: list[str], sql_addr: str | None, *,
                direct_tls: bool = False) -> HostFacts:
        """Hashes of `paths` on the host and the certificate it serves on `sql_addr` (None if it serves none);
        `direct_tls` for an address that speaks TLS at once (the DB Console's http_addr)."""
        for directory in sorted({posixpath.dirname(path) for path in paths}):
            if (session.name, directory) in self._swept:
                continue
            for stale in remote_files.remove_stale_temps(session, directory):
                self.report(Progress(session.name, "observe", "running",
                                     f"removed {stale}, left by a run that was killed"))
            self._swept.add((session.name, directory))
        hashes = {path: remote_files.file_sha256(session, path) for path in paths}
        served = None
        if sql_addr:
            try:
                served = (probes.probe_http if direct_tls else probes.probe_sql)(sql_addr).fingerprint
            except CertRotateError:
                served = None
        return HostFacts(session.name, hashes, served)

    def _clock_check(self, session: HostSession, step: str):
        """What the first upload to a node in this run calls with the node's time, before it renames anything."""
        if session.name in self._clocks_checked:
            return None

        def check(remote: float | None) -> None:
            self._check_clock(session, remote, step)
            self._clocks_checked.add(session.name)
        return check

    def _check_clock(self, session: HostSession, remote: float | None, step: str) -> None:
        """Certificates are backdated 24 h, so a node whose clock is behind still accepts new ones.

        A skew of minutes is worth a warning (logs and expiry checks disagree); a node more
        than the backdating behind would reject every new certificate as not yet valid, so
        the files it was about to get are left unrenamed.
        """
        if remote is None:
            self.report(Progress(session.name, step, "warning", "could not read the node's clock"))
            return
        skew = remote - time.time()
        if abs(skew) > MAX_CLOCK_SKEW.total_seconds():
            raise StepFailed(
                f"{session.name}'s clock is {abs(skew) / 3600:.1f} h {'behind' if skew < 0 else 'ahead of'} this "
                f"machine's, beyond the {MAX_CLOCK_SKEW.total_seconds() / 3600:.0f} h that certificates are backdated; "
                "fix its time (NTP) before rotating."
            )
        if abs(skew) > CLOCK_WARNING.total_seconds():
            self.report(Progress(session.name, step, "warning",
                                 f"clock {abs(skew) / 60:.0f} min {'behind' if skew < 0 else 'ahead'}; "
                                 "backdated certificates cover it, but check NTP"))

    # -- apply -------------------------------------------------------------------------

    def apply(self, session: HostSession | None, actions: list[Action], step: str) -> None:
        served = trust_probes.ServedInPlan()
        for group in _consecutive_trust_probes(actions):
            if isinstance(group, list):
                self._expect_trust(group, step, served)
                continue
            action = group
            if isinstance(action, WriteFiles):
                self._write(session, action, step)
            elif isinstance(action, RunCommand):
                self._run(session, action, step)
            elif isinstance(action, ExpectServed):
                self._expect_served(action, step)
            elif isinstance(action, ExpectAccepted):
                self._expect_accepted(action, step)
            elif isinstance(action, ExportFiles):
                self._export(action, step)
            elif isinstance(action, SwapLinkedDir):
                assert session is not None
                linked_certs.apply(session, action, step, self.report)

    def _write(self, session: HostSession | None, action: WriteFiles, step: str) -> None:
        assert session is not None
        names = ", ".join(Path(f.path).name for f in action.files)
        self.report(Progress(action.host, step, "running", f"uploading {names}"))
        remote = [remote_files.RemoteFile(f.path, f.content, f.mode) for f in action.files]
        remote_files.upload_files(session, remote_files_in_commit_order(remote), rotation_id=action.backup_id,
                                  check_node_clock=self._clock_check(session, step))
        self.report(Progress(action.host, step, "running", f"uploaded {names}"))

    def _run(self, session: HostSession | None, action: RunCommand, step: str) -> None:
        assert session is not None
        self.report(Progress(action.host, step, "running", f"{action.purpose}: {action.command}"))
        if action.purpose == "reload":
            session.reload(action.command)
            return
        result = session.run(action.command)
        if not result.ok:
            raise StepFailed(
                f"{action.purpose} on {action.host} failed: `{action.command}` exited {result.exit_status}"
                + (f": {result.output}" if result.output else "") + "."
            )

    def _expect_served(self, action: ExpectServed, step: str) -> None:
        seen = probes.wait_for_fingerprint(action.address, action.fingerprint, timeout=self.verify_timeout,
                                           postgres_preamble=not action.direct_tls)
        if seen != action.fingerprint:
            raise ServedMismatch(
                f"{action.host} still serves certificate {seen[:16]}… on {action.address} instead of "
                f"{action.fingerprint[:16]}… after the reload; the node did not load the new files.",
                seen=seen,
            )
        self.report(Progress(action.host, step, "running", f"serves {action.fingerprint[:16]}…"))

    def _expect_trust(self, actions: list[ExpectTrust], step: str, served: trust_probes.ServedInPlan) -> None:
        """A node's trust probes after one reload (old CA and new CA, say) run side by side, each
        waiting for the reload on its own; they are judged and reported in the plan's order."""
        probed = [action for action in actions if action.ca_fingerprint in self.probe_cas]
        expected = {id(a): served.expected(a.address, a.serves) if a.trusted else None for a in probed}

        def probe(action: ExpectTrust) -> probes.TrustResult | str:
            return self.probe_clients.verdict(action.address, self.probe_cas[action.ca_fingerprint], action.trusted,
                                              timeout=self.verify_timeout, serves=expected[id(action)])

        verdicts = dict(zip(map(id, probed), trust_probes.side_by_side(probe, probed)))
        for action in actions:
            if id(action) in verdicts:
                self._judge_trust(action, verdicts[id(action)], step, served)
                continue
            self.report(Progress(action.host, step, "skipped", f"no key for CA {action.ca_fingerprint[:16]}… to probe with"))
            if action.serves and action.trusted:  # the served check rode on this probe: make it on its own
                self._expect_served(ExpectServed(action.host, action.address, action.serves), step)

    def _judge_trust(self, action: ExpectTrust, verdict: probes.TrustResult | str, step: str,
                     served: trust_probes.ServedInPlan) -> None:
        if isinstance(verdict, str):
            wanted = "trust" if action.trusted else "stop trusting"
            raise StepFailed(
                f"{action.host} did not {wanted} CA {action.ca_fingerprint[:16]}… after the reload "
                f"({verdict}); check its ca.crt and reload command."
            )
        # An accepted probe completes its handshake, so it also shows the leaf (a refused one may not).
        expected = served.expected(action.address, action.serves) if action.trusted else None
        seen = verdict.served_fingerprint
        if expected and seen and seen != expected:
            raise ServedMismatch(
                f"{action.host} still serves certificate {seen[:16]}… on {action.address} instead of "
                f"{expected[:16]}… after the reload; the node did not load the new files.",
                seen=seen,
            )
        served.saw(action.address, seen)
        if seen:
            self.served_seen[action.host] = seen
        verb = "trusts" if action.trusted else "no longer trusts"
        also = f" and serves {seen[:16]}…" if action.trusted and seen else ""
        self.report(Progress(action.host, step, "running", f"{verb} CA {action.ca_fingerprint[:16]}…{also}"))

    def _expect_accepted(self, action: ExpectAccepted, step: str) -> None:
        """Present the certificate itself, as the node would when it dials another node."""
        client = Issued(x509.load_pem_x509_certificate(action.cert_pem), load_private_key(action.key_pem, "client key"))
        # probe_trust's `ca` only names the issuer in its messages; the certificate itself is presented.
        verdict = probes.wait_for_trust(action.address, client, True, timeout=self.verify_timeout, client=client,
                                        user=action.user)
        if isinstance(verdict, str):
            raise StepFailed(
                f"{action.host} refuses its new client.{action.user}.crt {action.fingerprint[:16]}… after the "
                f"reload ({verdict}); check its CA bundles and reload command."
            )
        self.report(Progress(action.host, step, "running", f"accepts client.{action.user}.crt {action.fingerprint[:16]}…"))

    def _export(self, action: ExportFiles, step: str) -> None:
        for f in action.files:
            writer = files.write_private if f.mode & 0o077 == 0 else files.write_public
            writer(action.directory / f.path, f.content, overwrite=True)
        self.report(Progress(action.host, step, "running", f"exported to {action.directory}"))


class ServedMismatch(StepFailed):
    def __init__(self, message: str, *, seen: str):
        super().__init__(message)
        self.seen = seen


def remote_files_in_commit_order(items: list[remote_files.RemoteFile]) -> list[remote_files.RemoteFile]:
    order = remote_files.commit_order([item.path for item in items])
    by_path = {item.path: item for item in items}
    return [by_path[path] for path in order]


def _consecutive_trust_probes(actions: list[Action]) -> list[Action | list[ExpectTrust]]:
    """The plan's actions, with each run of consecutive ExpectTrust gathered into one list."""
    grouped: list[Action | list[ExpectTrust]] = []
    for action in actions:
        if isinstance(action, ExpectTrust):
            if grouped and isinstance(grouped[-1], list):
                grouped[-1].append(action)
            else:
                grouped.append([action])
        else:
            grouped.append(action)
    return grouped
