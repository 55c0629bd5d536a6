"""Findings for `certrotate check`: what is due and what expires, as one line each.

Made for cron and monitoring: warnings (a step is due, expiry within warn days, a node
that cannot be probed) and criticals (expiry within crit days, or already expired).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from core.config.inventory import resolve_local
from core.config.record import RotationRecord
from core.config.state import State
from core.errors import CertRotateError
from core.pki.certs_dir import list_certs_dir
from core.remote import probes


@dataclass(frozen=True)
class Finding:
    level: str  # "warning" or "critical"
    message: str

    EXIT: ClassVar[dict[str, int]] = {"warning": 1, "critical": 2}


def expiry_finding(what: str, not_after: dt.datetime, now: dt.datetime, warn_days: int, crit_days: int) -> Finding | None:
    left = not_after - now
    if left <= dt.timedelta(0):
        return Finding("critical", f"{what} expired on {not_after:%Y-%m-%d}.")
    if left <= dt.timedelta(days=crit_days):
        return Finding("critical", f"{what} expires on {not_after:%Y-%m-%d}, in {left.days} days.")
    if left <= dt.timedelta(days=warn_days):
        return Finding("warning", f"{what} expires on {not_after:%Y-%m-%d}, in {left.days} days.")
    return None


def check_certs_dir(directory: Path, now: dt.datetime, warn_days: int, crit_days: int) -> list[Finding]:
    findings = []
    for item in list_certs_dir(directory):
        if item.error:
            findings.append(Finding("warning", f"{directory / item.cert_file}: {item.error}."))
        for index, cert in enumerate(item.certificates):
            label = f"{directory / item.cert_file}" + (f" entry {index + 1}" if len(item.certificates) > 1 else "")
            finding = expiry_finding(label, cert.not_valid_after_utc, now, warn_days, crit_days)
            if finding:
                findings.append(finding)
    return findings


def check_state(state: State, now: dt.datetime, warn_days: int, crit_days: int, *, probe_timeout: float = 3.0) -> list[Finding]:
    findings = []
    local = resolve_local(state.inventory.cluster.local_certs_dir, state.base_dir)
    if local.is_dir():
        findings += check_certs_dir(local, now, warn_days, crit_days)
    rotation = RotationRecord(state.rotation)
    if rotation:
        if rotation.last_error:
            findings.append(Finding("warning", f"rotation {rotation.id} stopped: {rotation.last_error}"))
        wait_until = rotation.wait_until
        if state.phase == "wait" and wait_until and now >= wait_until:
            findings.append(Finding("warning", f"rotation {rotation.id}: the leaf step is due since {wait_until:%Y-%m-%d}; run certrotate advance."))
        elif state.phase in ("trust", "leaf", "retire") and not rotation.last_error:
            findings.append(Finding("warning", f"rotation {rotation.id} is in phase {state.phase}; run certrotate advance."))
    for node in state.inventory.nodes:
        if node.sql_addr:
            findings += _served_findings(f"node {node.name}", lambda: probes.probe_sql(node.sql_addr, timeout=probe_timeout),
                                         now, warn_days, crit_days)
        if node.http_addr:  # the DB Console's certificate: ui.crt, often from a public CA with a short life
            findings += _served_findings(f"node {node.name}'s DB Console on {node.http_addr}",
                                         lambda: probes.probe_http(node.http_addr, timeout=probe_timeout),
                                         now, warn_days, crit_days)
    return findings


def _served_findings(what: str, probe, now: dt.datetime, warn_days: int, crit_days: int) -> list[Finding]:
    try:
        served = probe()
    except CertRotateError as error:
        return [Finding("warning", f"{what}: {error}")]
    finding = expiry_finding(f"{what} serves a certificate that", served.not_after, now, warn_days, crit_days)
    return [finding] if finding else []
