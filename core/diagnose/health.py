"""Findings for `certrotate check`: what is due and what expires, as one line each.

Made for cron and monitoring: warnings (a step is due, expiry within warn days, a node
that cannot be probed) and criticals (expiry within crit days, or already expired).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from core.config.inventory import resolve_local
from core.config.record import RotationRecord
from core.config.state import State
from core.config.workspace import Workspace
from core.errors import CertRotateError
from core.findings import FAIL, WARN, Finding, expiry_finding
from core.pki.certs_dir import client_cert_name, list_certs_dir
from core.remote import probes
from core.rotation.kinds import recover
from core.rotation.kinds.expiry import RECOVER

SEVERITY = {WARN: "warning", FAIL: "critical"}  # the words `check` prints, as monitoring plugins do


def line(finding: Finding) -> str:
    """`WARNING: ...` or `CRITICAL: ...`: one line of `certrotate check`'s output."""
    return f"{SEVERITY[finding.level].upper()}: {finding.message}"


def expiry_problem(what: str, not_after: dt.datetime, now: dt.datetime, warn_days: int, crit_days: int) -> Finding | None:
    """A warning within `warn_days`, critical within `crit_days` or expired; None when neither."""
    finding = expiry_finding(what, not_after, now, warn_days=warn_days, fail_days=crit_days)
    return None if finding.ok else finding


def check_certs_dir(directory: Path, now: dt.datetime, warn_days: int, crit_days: int) -> list[Finding]:
    """Expiry of every certificate in `directory`; what cannot be checked is a finding too, never silence."""
    if not directory.is_dir():
        return [Finding(WARN, "certs-dir", f"cannot check {directory}: the certs directory does not exist.")]
    findings = []
    listing = list_certs_dir(directory)
    if not listing:
        findings.append(Finding(WARN, "certs-dir", f"cannot check {directory}: it holds no certificate certrotate "
                                                 "knows (ca.crt, node.crt, client.<user>.crt, ...)."))
    for item in listing:
        if item.error:
            findings.append(Finding(WARN, "certs-dir", f"{directory / item.cert_file}: {item.error}."))
        for index, cert in enumerate(item.certificates):
            label = f"{directory / item.cert_file}" + (f" entry {index + 1}" if len(item.certificates) > 1 else "")
            finding = expiry_problem(label, cert.not_valid_after_utc, now, warn_days, crit_days)
            if finding:
                findings.append(finding)
    return findings


def check_state(state: State, now: dt.datetime, warn_days: int, crit_days: int, *, probe_timeout: float = 3.0) -> list[Finding]:
    findings = []
    local = resolve_local(state.inventory.cluster.local_certs_dir, state.base_dir)
    findings += check_certs_dir(local, now, warn_days, crit_days)
    if local.is_dir():
        findings += _client_findings(state, Workspace(state.base_dir, state.inventory.cluster), now, warn_days,
                                     crit_days)
    rotation = RotationRecord(state.rotation)
    if rotation:
        if rotation.last_error:
            findings.append(Finding(WARN, "rotation", f"rotation {rotation.id} stopped: {rotation.last_error}"))
        wait_until = rotation.wait_until
        if state.phase == "wait" and wait_until and now >= wait_until:
            findings.append(Finding(WARN, "rotation", f"rotation {rotation.id}: the leaf step is due since {wait_until:%Y-%m-%d}; run certrotate advance."))
        elif state.phase in ("trust", "leaf", "retire") and not rotation.last_error:
            findings.append(Finding(WARN, "rotation", f"rotation {rotation.id} is in phase {state.phase}; run certrotate advance."))
    served: dict[str, dt.datetime | None] = {}
    for node in state.inventory.nodes:
        served[node.name] = None
        if node.sql_addr:
            def probe_sql(node=node):
                certificate = probes.probe_sql(node.sql_addr, timeout=probe_timeout)
                served[node.name] = certificate.not_after
                return certificate

            findings += _served_findings(f"node {node.name}", probe_sql, now, warn_days, crit_days)
        if node.http_addr:  # the DB Console's certificate: ui.crt, often from a public CA with a short life
            findings += _served_findings(f"node {node.name}'s DB Console on {node.http_addr}",
                                         lambda: probes.probe_http(node.http_addr, timeout=probe_timeout),
                                         now, warn_days, crit_days)
    if not rotation:
        findings += _down_by_expiry(state, served, now)
    return findings


def _down_by_expiry(state: State, served: dict[str, dt.datetime | None], now: dt.datetime) -> list[Finding]:
    """Expired certificates are an outage with its own way out: say which command brings the cluster back."""
    ws = Workspace(state.base_dir, state.inventory.cluster)
    try:
        recovery = recover.diagnose(recover.observed(state, ws, served), now)
    except CertRotateError:
        return []  # no readable local bundle: the certs-dir findings above say so
    if recovery is None:
        return []
    return [Finding(FAIL, "expiry", f"The cluster is down by expiry: {recovery.why.split('. ')[0]}; bring it back with "
                                f"`{RECOVER}`.")]


def _client_findings(state: State, ws: Workspace, now: dt.datetime, warn_days: int, crit_days: int) -> list[Finding]:
    """A client whose certificate is not in the local certs dir is judged by the newest one certrotate issued it;
    with none known, its expiry cannot be checked from here, and `check` says so."""
    findings = []
    for client in state.inventory.clients:
        if (ws.local_certs_dir / client_cert_name(client.user)).is_file():
            continue  # judged with the certs dir above
        not_after = recover.newest_client_certificate(ws, state, client.user)
        if not_after is None:
            findings.append(Finding(WARN, "certs-dir", f"cannot check client {client.user}: "
                                    f"{ws.local_certs_dir / client_cert_name(client.user)} does not exist and no "
                                    "finished rotation issued it a certificate, so its expiry is unknown."))
            continue
        finding = expiry_problem(f"client {client.user}'s newest certificate", not_after, now, warn_days, crit_days)
        if finding:
            findings.append(finding)
    return findings


def _served_findings(what: str, probe, now: dt.datetime, warn_days: int, crit_days: int) -> list[Finding]:
    try:
        served = probe()
    except CertRotateError as error:
        return [Finding(WARN, "served", f"{what}: {error}")]
    finding = expiry_problem(f"{what} serves a certificate that", served.not_after, now, warn_days, crit_days)
    return [finding] if finding else []
