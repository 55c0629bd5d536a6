"""The operator's side of a rotation: CA keys, the local bundle, and the leaves a rotation issues.

Everything a rotation generates is written here before anything leaves the machine, under
`local_certs_dir/rotations/<rotation id>/`, and found again on resume: each `ensure_*`
function first looks for what an earlier (perhaps killed) run already made, and only
issues anew when nothing usable is there. A preview (dry run) stages the same files: what
it shows (sha256 of every certificate and key) is then exactly what the run uploads
(core.rotation.contract); `dry_run` is still accepted from callers and changes nothing here. The CA keys stay here; nothing in this module
sends anything anywhere.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature

from core import files, pki
from core.config.inventory import ClusterConfig, NodeConfig, resolve_local
from core.errors import BadInput
from core.pki.certs_dir import CA_CERT, CLIENT_CA_CERT, NODE_CERT, NODE_KEY, client_cert_name, client_key_name, load_ca
from core.pki.keys import key_matches_certificate, load_private_key


@dataclass(frozen=True)
class LeafFiles:
    """A certificate and key on the operator's disk, as they will be uploaded."""

    cert_pem: bytes
    key_pem: bytes
    fingerprint: str

    def __repr__(self) -> str:
        return f"LeafFiles(fingerprint={self.fingerprint[:16]}…)"


@dataclass(frozen=True)
class Workspace:
    base_dir: Path
    cluster: ClusterConfig

    @property
    def local_certs_dir(self) -> Path:
        return resolve_local(self.cluster.local_certs_dir, self.base_dir)

    @property
    def ca_key_path(self) -> Path:
        return resolve_local(self.cluster.ca_key, self.base_dir)

    @property
    def bundle_path(self) -> Path:
        return self.local_certs_dir / CA_CERT

    @property
    def client_ca_key_path(self) -> Path | None:
        """The client CA's key, when the cluster has a client CA of its own (cluster.client_ca_key)."""
        return resolve_local(self.cluster.client_ca_key, self.base_dir) if self.cluster.client_ca_key else None

    @property
    def client_bundle_path(self) -> Path:
        return self.local_certs_dir / CLIENT_CA_CERT

    def current_client_ca(self) -> pki.Issued:
        """The CA that signs client certificates (and client.node.crt): the client CA when there is one."""
        if self.client_ca_key_path is None:
            return self.current_ca()
        return load_ca(self.client_bundle_path, self.client_ca_key_path)

    def rotation_dir(self, rotation_id: str) -> Path:
        return self.local_certs_dir / "rotations" / rotation_id

    def export_dir(self, user: str) -> Path:
        return self.local_certs_dir / "export" / user

    def relative(self, path: Path) -> str:
        try:
            return str(path.relative_to(self.base_dir))
        except ValueError:
            return str(path)

    def read_bundle(self) -> bytes:
        return files.read_bytes(self.bundle_path, "The local CA bundle")

    def current_ca(self) -> pki.Issued:
        """The CA that signs today: first in the local bundle, with the operator's CA key."""
        return load_ca(self.bundle_path, self.ca_key_path)


def ensure_ca(key_path: Path, cert_path: Path, *, key_type: str, lifetime: dt.timedelta, now: dt.datetime,
              common_name: str, dry_run: bool = False) -> pki.Issued:
    """A CA at these paths: reuse a complete earlier one, finish a half-made one, or make it (key 0600).

    A dry run writes it too (on the operator's side only), so that the next preview and the
    run show and use this CA, not a throwaway one each time.
    """
    key = None
    if key_path.exists():
        key = load_private_key(files.read_bytes(key_path, "CA key"), str(key_path))
        if cert_path.exists():
            cert = x509.load_pem_x509_certificate(files.read_bytes(cert_path, "CA certificate"))
            if key_matches_certificate(key, cert.public_key()):
                return pki.Issued(cert, key)
    issued = pki.issue_ca(key_type=key_type, lifetime=lifetime, now=now, key=key, common_name=common_name)
    if key is None:
        files.write_private(key_path, issued.key_pem(), overwrite=False)
    files.write_public(cert_path, issued.cert_pem, overwrite=True)
    return issued


def _staged(cert_path: Path, key_path: Path, ca: pki.Issued) -> LeafFiles | None:
    """An earlier run's leaf if it is complete, matches its key and was signed by `ca`."""
    if not (cert_path.exists() and key_path.exists()):
        return None
    try:
        cert_pem = cert_path.read_bytes()
        cert = x509.load_pem_x509_certificate(cert_pem)
        key_pem = key_path.read_bytes()
        key = load_private_key(key_pem, str(key_path))
        cert.verify_directly_issued_by(ca.certificate)
    except (ValueError, TypeError, BadInput, InvalidSignature):
        return None
    if not key_matches_certificate(key, cert.public_key()):
        return None
    return LeafFiles(cert_pem, key_pem, pki.sha256_fingerprint(cert))


def _write_leaf(cert_path: Path, key_path: Path, issued: pki.Issued, dry_run: bool) -> LeafFiles:
    """Stage a new leaf (a preview too, so the run uploads the bytes the preview showed)."""
    files.write_private(key_path, issued.key_pem(), overwrite=True)
    files.write_public(cert_path, issued.cert_pem, overwrite=True)
    return LeafFiles(issued.cert_pem, issued.key_pem(), issued.fingerprint)


def ensure_node_leaf(ws: Workspace, rotation_id: str, ca: pki.Issued, node: NodeConfig, *, now: dt.datetime,
                     dry_run: bool = False) -> LeafFiles:
    """node.crt/node.key; in the split layout without CN=node (pki.SPLIT_NODE_PROFILE)."""
    directory = ws.rotation_dir(rotation_id) / "nodes" / node.name
    cert_path, key_path = directory / NODE_CERT, directory / NODE_KEY
    staged = _staged(cert_path, key_path, ca)
    if staged:
        return staged
    addresses = list(node.addresses) or [node.ssh_host]
    issued = pki.issue_node(
        ca, addresses, key_type=ws.cluster.key_type, now=now,
        lifetime=_leaf_lifetime(ca, ws.cluster.node_lifetime_days, now), ocsp_url=ws.cluster.ocsp_url,
        profile=pki.NODE_PROFILES[ws.cluster.node_cert_layout],
    )
    return _write_leaf(cert_path, key_path, issued, dry_run)


def ensure_client_node_leaf(ws: Workspace, rotation_id: str, ca: pki.Issued, node: NodeConfig, *, now: dt.datetime,
                            dry_run: bool = False) -> LeafFiles:
    """client.node.crt/.key of one node (split layout): CN=node, clientAuth, signed by the client-signing CA."""
    directory = ws.rotation_dir(rotation_id) / "nodes" / node.name
    cert_path, key_path = directory / client_cert_name(pki.NODE_USER), directory / client_key_name(pki.NODE_USER)
    staged = _staged(cert_path, key_path, ca)
    if staged:
        return staged
    issued = pki.issue_client(
        ca, pki.NODE_USER, key_type=ws.cluster.key_type, now=now,
        lifetime=_leaf_lifetime(ca, ws.cluster.node_lifetime_days, now), ocsp_url=ws.cluster.ocsp_url,
    )
    return _write_leaf(cert_path, key_path, issued, dry_run)


def ensure_client_leaf(ws: Workspace, rotation_id: str, ca: pki.Issued, user: str, *, now: dt.datetime,
                       dry_run: bool = False) -> LeafFiles:
    directory = ws.rotation_dir(rotation_id) / "clients" / user
    cert_path, key_path = directory / client_cert_name(user), directory / client_key_name(user)
    staged = _staged(cert_path, key_path, ca)
    if staged:
        return staged
    issued = pki.issue_client(
        ca, user, key_type=ws.cluster.key_type, now=now,
        lifetime=_leaf_lifetime(ca, ws.cluster.client_lifetime_days, now), ocsp_url=ws.cluster.ocsp_url,
    )
    return _write_leaf(cert_path, key_path, issued, dry_run)


def _leaf_lifetime(ca: pki.Issued, days: int, now: dt.datetime) -> dt.timedelta:
    """The configured lifetime, cut to the CA's remaining life: a leaf never outlives its CA."""
    ca_end = ca.certificate.not_valid_after_utc
    remaining = ca_end - now - dt.timedelta(minutes=1)
    if remaining <= dt.timedelta(0):
        # Said here: past this point the clipped lifetime is only "not positive", which hides why.
        raise BadInput(f"The CA that would sign the new certificates expired on {ca_end:%Y-%m-%d %H:%M} UTC; "
                       "rotate the CA (certrotate start ca) instead.")
    return min(dt.timedelta(days=days), remaining)
