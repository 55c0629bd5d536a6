"""What a step must do on one host, decided from what was observed there.

Each function takes the wanted end state and the host's observed facts and returns the
actions still missing — an empty list when the host is already there. That makes every
step idempotent: a rerun after a crash observes again and plans only the rest.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field

from core.pki.certs_dir import CA_CERT, NODE_CERT, NODE_KEY
from core.rotation.model import Action, ExpectAccepted, ExpectServed, ExpectTrust, FileContent, RunCommand, WriteFiles

PUBLIC = 0o644
PRIVATE = 0o600


@dataclass(frozen=True)
class HostFacts:
    """What we saw on a host: sha256 of its files (None: missing) and what it serves."""

    host: str
    files: dict[str, str | None] = field(default_factory=dict)
    served_fingerprint: str | None = None

    def has(self, path: str, content: FileContent) -> bool:
        return self.files.get(path) == content.sha256


@dataclass(frozen=True)
class TrustCheck:
    ca_fingerprint: str
    trusted: bool


def _writes_and_reload(
    host: str, facts: HostFacts, wanted: list[FileContent], reload: str | None, backup_id: str, verified: bool
) -> list[Action]:
    missing = tuple(f for f in wanted if not facts.has(f.path, f))
    actions: list[Action] = []
    if missing:
        actions.append(WriteFiles(host, missing, backup_id))
    if reload and (missing or not verified):
        actions.append(RunCommand(host, reload, "reload"))
    return actions


def plan_bundle(
    host: str,
    certs_dir: str,
    facts: HostFacts,
    bundle_pem: bytes,
    *,
    reload: str | None,
    sql_addr: str | None,
    checks: list[TrustCheck],
    backup_id: str,
    verified: bool,
    bundle_file: str = CA_CERT,
) -> list[Action]:
    """Put `bundle_pem` in ca.crt (or ca-client.crt), reload, and prove the node still serves what it served.

    The trust probes show the served leaf in their own handshakes (`serves`); only without a
    probe that is accepted does the served check need a handshake of its own.
    """
    wanted = [FileContent(posixpath.join(certs_dir, bundle_file), bundle_pem, PUBLIC)]
    actions = _writes_and_reload(host, facts, wanted, reload, backup_id, verified)
    if sql_addr and (actions or not verified):
        serves = facts.served_fingerprint
        if serves and not any(c.trusted for c in checks):
            actions.append(ExpectServed(host, sql_addr, serves))
        actions += [ExpectTrust(host, sql_addr, c.ca_fingerprint, c.trusted, serves=serves if c.trusted else None)
                    for c in checks]
    return actions


def plan_node_leaf(
    host: str,
    certs_dir: str,
    facts: HostFacts,
    cert_pem: bytes | None,
    key_pem: bytes | None,
    fingerprint: str | None,
    *,
    bundle_pem: bytes | None,
    reload: str | None,
    sql_addr: str | None,
    backup_id: str,
    verified: bool,
    extra_files: dict[str, tuple[bytes, int]] | None = None,
    accepted: tuple[ExpectAccepted, ...] = (),
) -> list[Action]:
    """Replace node.crt/node.key (and ca.crt for a first install), reload, prove the new one is served.

    `extra_files` go up in the same change (client.node.crt/.key of the split layout; ca-client.crt
    of a first install with a client CA); `accepted` are client certificates the node must then
    accept. Without `cert_pem` node.crt stays, and the node must go on serving `fingerprint`.
    """
    return plan_node_change(host, certs_dir, facts, node_leaf_files(cert_pem, key_pem, bundle_pem, extra_files),
                            fingerprint, reload=reload, address=sql_addr, backup_id=backup_id, verified=verified,
                            accepted=accepted)


def node_leaf_files(cert_pem: bytes | None, key_pem: bytes | None, bundle_pem: bytes | None,
                    extra_files: dict[str, tuple[bytes, int]] | None) -> dict[str, tuple[bytes, int]]:
    """A node's leaf files in upload order: ca.crt (first install), node.key before node.crt, then the rest."""
    wanted: dict[str, tuple[bytes, int]] = {}
    if bundle_pem is not None:
        wanted[CA_CERT] = (bundle_pem, PUBLIC)
    if cert_pem is not None:
        if key_pem is not None:  # None: the node made its key itself (key_on_node); only node.crt goes up
            wanted[NODE_KEY] = (key_pem, PRIVATE)
        wanted[NODE_CERT] = (cert_pem, PUBLIC)
    return wanted | (extra_files or {})


def plan_node_change(
    host: str,
    certs_dir: str,
    facts: HostFacts,
    files: dict[str, tuple[bytes, int]],
    fingerprint: str | None,
    *,
    reload: str | None,
    address: str | None,
    backup_id: str,
    verified: bool,
    direct_tls: bool = False,
    accepted: tuple[ExpectAccepted, ...] = (),
    trusted: tuple[str, ...] = (),
) -> list[Action]:
    """Put a node's new files up as one change, reload once, and prove it serves `fingerprint` on `address`
    (and accepts the `accepted` client certificates, and client certificates of the `trusted` CAs).

    Nothing is planned when the files are there and the node already serves the certificate
    (and, for `accepted` client certificates, the step was verified before).
    """
    wanted = [FileContent(posixpath.join(certs_dir, name), content, mode) for name, (content, mode) in files.items()]
    if facts.served_fingerprint == fingerprint and all(facts.has(f.path, f) for f in wanted) and (
            verified or not (accepted or trusted)):
        return []
    actions = _writes_and_reload(host, facts, wanted, reload, backup_id, verified=False)
    if address and fingerprint:
        actions.append(ExpectServed(host, address, fingerprint, direct_tls=direct_tls))
    if address:
        actions += list(accepted)
        actions += [ExpectTrust(host, address, fingerprint_of_ca, True) for fingerprint_of_ca in trusted]
    return actions


def plan_client_files(
    host: str,
    certs_dir: str,
    facts: HostFacts,
    files: dict[str, tuple[bytes, int]],
    *,
    restart: str | None,
    backup_id: str,
) -> list[Action]:
    """Deliver files to a client host over SSH and restart the client if it says how."""
    wanted = [FileContent(posixpath.join(certs_dir, name), content, mode) for name, (content, mode) in files.items()]
    missing = tuple(f for f in wanted if not facts.has(f.path, f))
    if not missing:
        return []
    actions: list[Action] = [WriteFiles(host, missing, backup_id)]
    if restart:
        actions.append(RunCommand(host, restart, "restart"))
    return actions
