"""Every certificate's expiry, as autopilot and the metrics see it: the edge that reads and probes.

- nodes: the certificate each node serves on sql_addr (a TLS probe, the truth clients meet);
  a node without sql_addr: the newest node.crt a finished rotation issued for it;
- clients: the newest client.<user>.crt certrotate holds for the client (the local certs dir,
  or what a finished rotation issued) — a client's own host is not read;
- the CAs: every entry of the local ca.crt (and ca-client.crt with a client CA), first = signing.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Callable

from cryptography import x509

from core.autopilot.decide import CertExpiry
from core.config.inventory import NodeConfig
from core.config.record import client_key
from core.config.state import State
from core.config.workspace import Workspace
from core.errors import CertRotateError
from core.pki import bundle
from core.pki.builder import sha256_fingerprint
from core.pki.certs_dir import CA_CERT, CLIENT_CA_CERT, NODE_CERT, client_cert_name

Probe = Callable[[str], tuple[dt.datetime, str]]  # sql_addr -> (not_after, fingerprint) of what it serves


def probe_served(timeout: float = 3.0) -> Probe:
    def probe(sql_addr: str) -> tuple[dt.datetime, str]:
        from core.remote.probes import probe_sql  # the socket user, loaded only when a node is probed

        served = probe_sql(sql_addr, timeout=timeout)
        return served.not_after, served.fingerprint
    return probe


def _read(path: Path) -> x509.Certificate | None:
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError):
        return None


def _newest(paths: list[Path]) -> x509.Certificate | None:
    certificates = [c for c in (_read(p) for p in paths) if c is not None]
    return max(certificates, key=lambda c: c.not_valid_before_utc, default=None)


def _done_rotations(state: State) -> list[str]:
    return [str(entry["id"]) for entry in state.history if entry.get("outcome") == "done" and entry.get("id")]


def ca_expiries(state: State) -> list[CertExpiry]:
    ws = Workspace(state.base_dir, state.inventory.cluster)
    out = []
    files = [(CA_CERT, ws.bundle_path, "ca")]
    if ws.client_ca_key_path is not None:
        files.append((CLIENT_CA_CERT, ws.client_bundle_path, "client-ca"))
    for name, path, role in files:
        try:
            entries = bundle.parse_bundle(path.read_bytes(), name)
        except (OSError, CertRotateError) as error:
            problem = getattr(error, "strerror", None) or str(error)
            out.append(CertExpiry(role, role, name, None, problem=f"{ws.relative(path)}: {problem}"))
            continue
        for index, entry in enumerate(entries.entries):
            out.append(CertExpiry(role if index == 0 else f"{role}-{index + 1}", role if index == 0 else "old-ca",
                                  name, entry.certificate.not_valid_after_utc, entry.fingerprint))
    return out


def node_expiry(state: State, node: NodeConfig, probe: Probe) -> CertExpiry:
    if node.sql_addr:
        try:
            not_after, fingerprint = probe(node.sql_addr)
            return CertExpiry(node.name, "node", NODE_CERT, not_after, fingerprint)
        except CertRotateError as error:
            return CertExpiry(node.name, "node", NODE_CERT, None, problem=str(error))
    ws = Workspace(state.base_dir, state.inventory.cluster)
    issued = _newest([ws.rotation_dir(rid) / "nodes" / node.name / NODE_CERT for rid in _done_rotations(state)])
    if issued is None:
        return CertExpiry(node.name, "node", NODE_CERT, None,
                          problem="no sql_addr to probe and no node.crt issued by certrotate")
    return CertExpiry(node.name, "node", NODE_CERT, issued.not_valid_after_utc, sha256_fingerprint(issued))


def client_expiries(state: State) -> list[CertExpiry]:
    ws = Workspace(state.base_dir, state.inventory.cluster)
    out = []
    for client in state.inventory.clients:
        name = client_cert_name(client.user)
        newest = ws.newest_client_certificate(client.user, state.history)
        key = client_key(client)
        if newest is None:
            out.append(CertExpiry(key, "client", name, None, problem=f"certrotate holds no {name}"))
        else:
            out.append(CertExpiry(key, "client", name, newest.not_valid_after_utc, sha256_fingerprint(newest)))
    return out


def expiries(state: State, probe: Probe | None = None) -> list[CertExpiry]:
    """The CAs, then every node, then every client, in inventory order."""
    probe = probe or probe_served()
    return ca_expiries(state) + [node_expiry(state, n, probe) for n in state.inventory.nodes] + client_expiries(state)
