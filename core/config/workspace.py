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
from core.pki.certs_dir import CA_CERT, CLIENT_CA_CERT, NODE_CERT, NODE_KEY, client_cert_name, client_key_name
from core.pki.keys import key_matches_certificate, load_private_key
from core.pki.subjects import client_subject, node_subject
from core.signers import select as signer_select
from core.signers.issue import issue_leaf, leaf_key


@dataclass(frozen=True)
class LeafFiles:
    """A certificate and key on the operator's disk, as they will be uploaded."""

    cert_pem: bytes
    key_pem: bytes | None  # None: the key was made on the node and never leaves it (key_on_node)
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
        return signer_select.load_local_ca(self.client_bundle_path, self.client_ca_key_path)

    def rotation_dir(self, rotation_id: str) -> Path:
        return self.local_certs_dir / "rotations" / rotation_id

    def export_dir(self, user: str) -> Path:
        return self.local_certs_dir / "export" / user

    def newest_client_certificate(self, user: str, history: list[dict]) -> x509.Certificate | None:
        """The newest certificate certrotate holds for `user`: the local certs dir's (as `cert create-client`
        writes it) or one a finished rotation issued; unreadable copies are passed over."""
        name = client_cert_name(user)
        done = [str(e["id"]) for e in history if e.get("outcome") == "done" and e.get("id")]
        paths = [self.local_certs_dir / name] + [self.rotation_dir(rid) / "clients" / user / name for rid in done]
        certificates = []
        for path in paths:
            try:
                certificates.append(x509.load_pem_x509_certificate(path.read_bytes()))
            except (OSError, ValueError):
                continue
        return max(certificates, key=lambda c: c.not_valid_before_utc, default=None)

    def relative(self, path: Path) -> str:
        try:
            return str(path.relative_to(self.base_dir))
        except ValueError:
            return str(path)

    def read_bundle(self) -> bytes:
        return files.read_bytes(self.bundle_path, "The local CA bundle")

    def current_ca(self) -> pki.Issued:
        """The CA that signs today: first in the local bundle, with its key where the signer keeps it
        (a key file, plain or encrypted; a token; the organisation's CFSSL server or manual CA)."""
        return signer_select.current_ca(self)


def ensure_ca(key_path: Path, cert_path: Path, *, key_type: str, lifetime: dt.timedelta, now: dt.datetime,
              common_name: str, dry_run: bool = False) -> pki.Issued:
    """A CA key file at these paths: reuse a complete earlier one, finish a half-made one, or make it
    (key 0600, encrypted when a passphrase is in use).

    A dry run writes it too (on the operator's side only), so that the next preview and the
    run show and use this CA, not a throwaway one each time.
    """
    return signer_select.ensure_local_ca(key_path, cert_path, key_type=key_type, lifetime=lifetime, now=now,
                                         common_name=common_name, dry_run=False)


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
    profile = pki.NODE_PROFILES[ws.cluster.node_cert_layout]
    issued = issue_leaf(
        ca, profile=profile, subject=node_subject(ws.cluster.node_subject, node.name, with_cn=not ws.cluster.split_node_certs),
        sans=pki.subject_alternative_names(addresses), key=leaf_key(key_path, ws.cluster.key_type, dry_run=dry_run),
        lifetime=_leaf_lifetime(ca, ws.cluster.node_lifetime_days, now), now=now, ocsp_url=ws.cluster.ocsp_url,
        label=f"the new {NODE_CERT} of {node.name}", request_path=_request_path(ws, rotation_id, f"{node.name}.node"),
        dry_run=dry_run,
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
    issued = issue_leaf(
        ca, profile=pki.CLIENT_PROFILE, subject=client_subject(ws.cluster.client_subject, pki.NODE_USER), sans=[],
        key=leaf_key(key_path, ws.cluster.key_type, dry_run=dry_run),
        lifetime=_leaf_lifetime(ca, ws.cluster.node_lifetime_days, now), now=now, ocsp_url=ws.cluster.ocsp_url,
        label=f"the new {cert_path.name} of {node.name}", request_path=_request_path(ws, rotation_id, f"{node.name}.client.node"),
        dry_run=dry_run,
    )
    return _write_leaf(cert_path, key_path, issued, dry_run)


def ensure_client_leaf(ws: Workspace, rotation_id: str, ca: pki.Issued, user: str, *, now: dt.datetime,
                       dry_run: bool = False) -> LeafFiles:
    directory = ws.rotation_dir(rotation_id) / "clients" / user
    cert_path, key_path = directory / client_cert_name(user), directory / client_key_name(user)
    staged = _staged(cert_path, key_path, ca)
    if staged:
        return staged
    issued = issue_leaf(
        ca, profile=pki.CLIENT_PROFILE, subject=client_subject(ws.cluster.client_subject, pki.check_user_name(user)),
        sans=[], key=leaf_key(key_path, ws.cluster.key_type, dry_run=dry_run),
        lifetime=_leaf_lifetime(ca, ws.cluster.client_lifetime_days, now), now=now, ocsp_url=ws.cluster.ocsp_url,
        label=f"the new {cert_path.name}", request_path=_request_path(ws, rotation_id, f"client.{user}"),
        dry_run=dry_run,
    )
    return _write_leaf(cert_path, key_path, issued, dry_run)


def _request_path(ws: Workspace, rotation_id: str, stem: str) -> Path:
    """Where a CSR waits for a manual CA (and its certificate is dropped beside it)."""
    return ws.rotation_dir(rotation_id) / "requests" / f"{stem}.csr"


def _leaf_lifetime(ca: pki.Issued, days: int, now: dt.datetime) -> dt.timedelta:
    """The configured lifetime, cut to the CA's remaining life: a leaf never outlives its CA."""
    ca_end = ca.certificate.not_valid_after_utc
    remaining = ca_end - now - dt.timedelta(minutes=1)
    if remaining <= dt.timedelta(0):
        # Said here: past this point the clipped lifetime is only "not positive", which hides why.
        raise BadInput(f"The CA that would sign the new certificates expired on {ca_end:%Y-%m-%d %H:%M} UTC; "
                       "rotate the CA (certrotate start ca) instead.")
    return min(dt.timedelta(days=days), remaining)
