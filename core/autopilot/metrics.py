"""`certrotate check --format prometheus|json`: what monitoring scrapes, from the same facts as `check`.

Prometheus: node_exporter's textfile format, written by prometheus-client's own exposition code.
Every certificate is a sample with cluster, host (the inventory name) and file labels; one whose
expiry could not be read still has its `certrotate_certificate_read_success` sample (0), so a node
that went away shows up instead of silently vanishing from a dashboard.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from core.autopilot.decide import CertExpiry
from core.config.record import RotationRecord
from core.config.state import State
from core.diagnose.health import SEVERITY, Finding

PHASES = ("idle", "trust", "wait", "leaf", "retire")
LEVELS = ("warning", "critical")


def _seconds(value: Any) -> float | None:
    return value.timestamp() if isinstance(value, dt.datetime) else None


def prometheus_text(cluster: str, state: State | None, expiries: list[CertExpiry], findings: list[Finding],
                    exit_code: int) -> bytes:
    from prometheus_client import CollectorRegistry, Gauge, generate_latest

    registry = CollectorRegistry(auto_describe=False)
    expiry = Gauge("certrotate_certificate_expiry_timestamp_seconds",
                   "When a node's or client's certificate expires (Unix time).",
                   ["cluster", "host", "file"], registry=registry)
    readable = Gauge("certrotate_certificate_read_success",
                     "1 when the certificate's expiry could be read (probed or found), else 0.",
                     ["cluster", "host", "file"], registry=registry)
    ca_expiry = Gauge("certrotate_ca_expiry_timestamp_seconds",
                      "When each CA in the local bundle expires (Unix time); position 1 signs.",
                      ["cluster", "file", "position", "fingerprint"], registry=registry)
    for item in expiries:
        if item.role in ("ca", "client-ca", "old-ca"):
            if item.not_after is not None:
                position = item.host.rsplit("-", 1)[-1] if item.role == "old-ca" else "1"
                ca_expiry.labels(cluster, item.file, position, item.fingerprint[:16]).set(item.not_after.timestamp())
            continue
        readable.labels(cluster, item.host, item.file).set(0 if item.not_after is None else 1)
        if item.not_after is not None:
            expiry.labels(cluster, item.host, item.file).set(item.not_after.timestamp())
    status = Gauge("certrotate_check_status", "The exit code of `certrotate check`: 0 ok, 1 warning, 2 critical.",
                   ["cluster"], registry=registry)
    status.labels(cluster).set(exit_code)
    counts = Gauge("certrotate_check_findings", "Findings of `certrotate check` by level.", ["cluster", "level"],
                   registry=registry)
    for level in LEVELS:
        counts.labels(cluster, level).set(sum(1 for f in findings if SEVERITY.get(f.level) == level))
    if state is not None:
        _rotation_metrics(registry, cluster, state)
    return generate_latest(registry)


def _rotation_metrics(registry, cluster: str, state: State) -> None:
    from prometheus_client import Gauge

    phase = Gauge("certrotate_rotation_phase", "1 for the phase the rotation is in (idle: none in flight).",
                  ["cluster", "phase"], registry=registry)
    for name in PHASES:
        phase.labels(cluster, name).set(1 if state.phase == name else 0)
    wait_until = _seconds(RotationRecord(state.rotation).wait_until) if state.rotation else None
    if wait_until is not None:
        Gauge("certrotate_rotation_wait_until_timestamp_seconds", "When the leaf step may run (Unix time).",
              ["cluster"], registry=registry).labels(cluster).set(wait_until)
    record = state.autopilot
    last_run = _seconds(record.get("last_run"))
    if last_run is not None:
        Gauge("certrotate_autopilot_last_run_timestamp_seconds", "When autopilot last ran (Unix time).",
              ["cluster"], registry=registry).labels(cluster).set(last_run)
        Gauge("certrotate_autopilot_last_run_exit_code",
              "Exit code of the last autopilot pass: 0 fine, 1 a person is needed or a step failed, 2 critical.",
              ["cluster"], registry=registry).labels(cluster).set(int(record.get("last_exit", 0)))
        Gauge("certrotate_autopilot_last_result", "1, labelled with what the last autopilot pass ended with.",
              ["cluster", "result"], registry=registry).labels(cluster, str(record.get("last_result", ""))).set(1)


def json_report(cluster: str, state: State | None, expiries: list[CertExpiry], findings: list[Finding],
                exit_code: int) -> dict[str, Any]:
    """Everything `check` knows, as one JSON object."""
    report: dict[str, Any] = {
        "cluster": cluster,
        "status": {0: "ok", 1: "warning", 2: "critical"}.get(exit_code, "critical"),
        "exit_code": exit_code,
        "findings": [{"level": SEVERITY.get(f.level, f.level), "message": f.message} for f in findings],
        "certificates": [{"host": e.host, "role": e.role, "file": e.file,
                          "not_after": e.not_after.isoformat() if e.not_after else None,
                          "fingerprint": e.fingerprint or None, "problem": e.problem or None} for e in expiries],
    }
    if state is not None:
        rotation = state.rotation
        report["phase"] = state.phase
        record = RotationRecord(rotation or {})
        report["rotation"] = ({"id": record.id, "kind": record.kind, "wait_until": _iso(record.wait_until),
                               "last_error": record.last_error or None} if rotation else None)
        record = state.autopilot
        report["autopilot"] = {
            "configured": state.policy is not None,
            "last_run": _iso(record.get("last_run")),
            "last_result": record.get("last_result"),
            "last_detail": record.get("last_detail"),
            "last_exit_code": record.get("last_exit"),
        }
    return report


def _iso(value: Any) -> str | None:
    return value.isoformat() if isinstance(value, dt.datetime) else None
