"""What the wizard sees on the hosts right now: reachable over SSH, served certificate, CA bundle.

Runs in worker threads and calls core only. An unknown host key is not a failure here:
it is handed back (`HostView.unknown_key`) so the wizard can ask the operator to confirm
the fingerprint, which is why `unknown_host_keys` exists at all — the engine folds every
host's failure into one sentence, and the question needs the key itself.
"""

from __future__ import annotations

import datetime as dt
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields
from typing import Any

from core.config.inventory import ClientConfig, NodeConfig
from core.config.record import RotationRecord, client_key
from core.config.state import State
from core.config.workspace import Workspace
from core.errors import CertRotateError
from core.pki import bundle
from core.pki.certs_dir import CA_CERT
from core.remote import probes, remote_files
from core.remote.known_hosts import UnknownHostKey
from core.remote.ssh import HostSession, SshPool
from core.rotation import kinds

MAX_PARALLEL = 16
PROBE_TIMEOUT = 3.0


@dataclass(frozen=True)
class HostView:
    """One row of the host table, as observed."""

    key: str  # node name, or client_key(client)
    reachable: str  # "yes", "no", "manual"
    problem: str = ""  # the one sentence when not reachable or not probed
    served_fingerprint: str | None = None
    served_not_after: dt.datetime | None = None
    bundle: str = ""  # which CAs its ca.crt holds: "old + new", "new", "old", "current", ...
    unknown_key: UnknownHostKey | None = None


def ssh_hosts(state: State) -> list[tuple[str, NodeConfig | ClientConfig]]:
    """(row key, config) of every host certrotate logs in to: the nodes, then SSH-delivered clients."""
    nodes = [] if state.inventory.cluster.on_kubernetes else state.inventory.nodes  # Kubernetes: no login to nodes
    hosts: list[tuple[str, NodeConfig | ClientConfig]] = [(node.name, node) for node in nodes]
    hosts += [(client_key(c), c) for c in state.inventory.clients if c.delivered_over_ssh]
    return hosts


def session_for(state: State, pool: SshPool, key: str, host: NodeConfig | ClientConfig) -> HostSession:
    if isinstance(host, ClientConfig):
        values: dict[str, Any] = {f.name: getattr(host, f.name) for f in fields(host)}
        return pool.session({**values, "name": f"client {key}"}, state.base_dir)
    return pool.session(host, state.base_dir)


def unknown_host_keys(state: State, pool: SshPool) -> list[UnknownHostKey]:
    """Connect to every SSH host; the hosts whose key is not in known_hosts yet, in inventory order.

    Other connection problems are left for the step itself to report.
    """

    def connect(item: tuple[str, NodeConfig | ClientConfig]) -> UnknownHostKey | None:
        try:
            session_for(state, pool, *item).transport()
        except UnknownHostKey as error:
            return error
        except CertRotateError:
            return None
        return None

    hosts = ssh_hosts(state)
    if not hosts:
        return []
    with ThreadPoolExecutor(max_workers=min(MAX_PARALLEL, len(hosts))) as executor:
        return [error for error in executor.map(connect, hosts) if error is not None]


def _bundle_label(state: State, pem: bytes | None, source: str) -> str:
    if pem is None:
        return "no ca.crt"
    try:
        held = set(bundle.parse_bundle(pem, source).fingerprints)
    except CertRotateError:
        return "unreadable ca.crt"
    rotation = RotationRecord(state.rotation)
    new = rotation.new_ca.get("fingerprint")
    old = set(rotation.old_ca_fingerprints)
    if not old:
        try:
            ws = Workspace(state.base_dir, state.inventory.cluster)
            old = set(bundle.parse_bundle(ws.read_bundle(), "ca.crt").fingerprints)
        except (CertRotateError, OSError):
            old = set()
        kind = kinds.lookup(rotation.kind)
        if not (kind and kind.rotates_ca and kind.authority == "node") or not new:
            # No second CA in play: the question is only whether the host has the operator's bundle.
            return "current" if held and held == old else "differs from local ca.crt"
        old -= {new}
    has_new, has_old = new in held, bool(held & old)
    if has_new and has_old:
        return "old + new"
    if has_new:
        return "new only"
    if has_old:
        return "old only"
    return "unknown CA"


def observe_host(state: State, pool: SshPool, key: str, host: NodeConfig | ClientConfig) -> HostView:
    """SSH login, the ca.crt it holds, and (nodes) the certificate it serves."""
    served_fingerprint = served_not_after = None
    problem = ""
    if isinstance(host, NodeConfig) and host.sql_addr:
        try:
            served = probes.probe_sql(host.sql_addr, timeout=PROBE_TIMEOUT)
            served_fingerprint, served_not_after = served.fingerprint, served.not_after
        except CertRotateError as error:
            problem = str(error)
    if isinstance(host, ClientConfig) and not host.delivered_over_ssh:
        return HostView(key, "manual")
    if isinstance(host, NodeConfig) and state.inventory.cluster.on_kubernetes:
        return HostView(key, "kubernetes", problem, served_fingerprint, served_not_after)
    certs_dir = host.certs_dir or ""
    try:
        session = session_for(state, pool, key, host)
        session.transport()
        pem = None
        if certs_dir:
            path = f"{certs_dir.rstrip('/')}/{CA_CERT}"
            if remote_files.file_sha256(session, path) is not None:
                pem = remote_files.read_file(session, path)
        label = _bundle_label(state, pem, f"{key}:{CA_CERT}")
    except UnknownHostKey as error:
        return HostView(key, "no", str(error), served_fingerprint, served_not_after, unknown_key=error)
    except CertRotateError as error:
        return HostView(key, "no", str(error), served_fingerprint, served_not_after)
    return HostView(key, "yes", problem, served_fingerprint, served_not_after, label)


def observe_hosts(state: State, pool: SshPool) -> list[HostView]:
    hosts = ssh_hosts(state)
    if state.inventory.cluster.on_kubernetes:
        hosts = [(node.name, node) for node in state.inventory.nodes] + hosts
    hosts += [(client_key(c), c) for c in state.inventory.clients if not c.delivered_over_ssh]
    with ThreadPoolExecutor(max_workers=min(MAX_PARALLEL, max(1, len(hosts)))) as executor:
        return list(executor.map(lambda item: observe_host(state, pool, *item), hosts))
