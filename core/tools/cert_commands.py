"""The `cockroach cert` commands as data in, files out: the engine of `certrotate cert`.

Every command computes all it will write before writing anything, then writes keys
before certificates and removes what it wrote if a later write fails, so a refused or
failed command leaves the certs dir as it found it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from core import files, pki
from core.errors import BadInput
from core.pki import bundle, certs_dir
from core.pki.certs_dir import client_signing_ca_path, load_ca
from core.pki.keys import PrivateKey, load_private_key, private_key_der_pkcs8, private_key_pem


@dataclass(frozen=True)
class CertOptions:
    certs_dir: Path
    ca_key: Path
    key_type: str = "rsa-2048"
    lifetime: dt.timedelta | None = None
    overwrite: bool = False
    ca_key_passphrase: bytes | None = None
    ocsp_url: str | None = None  # AIA OCSP responder written into node and client certificates


@dataclass(frozen=True)
class PlannedFile:
    path: Path
    content: bytes = b""
    private: bool = False

    def __repr__(self) -> str:  # content may be a key: never show it
        return f"PlannedFile({self.path}, private={self.private})"


def _write_all(planned: list[PlannedFile], overwrite: bool) -> list[Path]:
    """Refuse existing files first, then write; undo new files if a later write fails."""
    if not overwrite:
        for item in planned:
            if item.path.exists():
                raise BadInput(f"{item.path} already exists; pass --overwrite to replace it.")
    created: list[Path] = []
    try:
        for item in planned:
            existed = item.path.exists()
            writer = files.write_private if item.private else files.write_public
            writer(item.path, item.content, overwrite=overwrite)
            if not existed:
                created.append(item.path)
    except BadInput:
        for path in created:
            with contextlib.suppress(OSError):
                path.unlink()
        raise
    return [item.path for item in planned]


def _existing_ca_key(options: CertOptions, allow_reuse: bool) -> PrivateKey | None:
    """The CA key to reuse, or None when a new one is to be made; an unasked-for reuse is refused."""
    if not options.ca_key.exists():
        return None
    if not allow_reuse:
        raise BadInput(f"CA key {options.ca_key} exists, but key reuse is disabled; pass --allow-ca-key-reuse to use it.")
    return load_private_key(files.read_bytes(options.ca_key, "CA key"), str(options.ca_key), options.ca_key_passphrase)


def create_ca(options: CertOptions, *, allow_ca_key_reuse: bool = False, client: bool = False,
              now: dt.datetime | None = None, common_name: str | None = None) -> list[Path]:
    """ca.crt (or ca-client.crt); with --overwrite the new CA is put in front of the existing ones."""
    name = certs_dir.CLIENT_CA_CERT if client else certs_dir.CA_CERT
    cert_path = options.certs_dir / name
    existing = cert_path.read_bytes() if cert_path.exists() else None
    if existing is not None and not options.overwrite:
        raise BadInput(f"{cert_path} already exists; pass --overwrite to add a new CA in front of it.")
    key = _existing_ca_key(options, allow_ca_key_reuse)
    issued = pki.issue_ca(
        key_type=options.key_type,
        lifetime=options.lifetime or pki.CA_LIFETIME,
        now=now,
        key=key,
        client_ca=client,
        common_name=common_name or ("Cockroach Client CA" if client else "Cockroach CA"),
    )
    combined = bundle.combine(issued.cert_pem, existing, str(cert_path))
    planned = []
    if key is None:
        planned.append(PlannedFile(options.ca_key, private_key_pem(issued.key, passphrase=options.ca_key_passphrase), True))
    planned.append(PlannedFile(cert_path, combined))
    return _write_all(planned, overwrite=True)


def create_node(options: CertOptions, hosts: list[str], *, now: dt.datetime | None = None) -> list[Path]:
    ca = load_ca(options.certs_dir / certs_dir.CA_CERT, options.ca_key, options.ca_key_passphrase)
    issued = pki.issue_node(ca, hosts, key_type=options.key_type, lifetime=options.lifetime or pki.LEAF_LIFETIME, now=now,
                             ocsp_url=options.ocsp_url)
    return _write_all(
        [
            PlannedFile(options.certs_dir / certs_dir.NODE_KEY, issued.key_pem(), True),
            PlannedFile(options.certs_dir / certs_dir.NODE_CERT, issued.cert_pem),
        ],
        options.overwrite,
    )


def create_client(options: CertOptions, user: str, *, pkcs8: bool = False, now: dt.datetime | None = None) -> list[Path]:
    pki.check_user_name(user)
    ca = load_ca(client_signing_ca_path(options.certs_dir), options.ca_key, options.ca_key_passphrase)
    issued = pki.issue_client(ca, user, key_type=options.key_type, lifetime=options.lifetime or pki.LEAF_LIFETIME, now=now,
                              ocsp_url=options.ocsp_url)
    key_path = options.certs_dir / certs_dir.client_key_name(user)
    planned = [PlannedFile(key_path, issued.key_pem(), True)]
    if pkcs8:
        planned.append(PlannedFile(key_path.with_name(key_path.name + ".pk8"), private_key_der_pkcs8(issued.key), True))
    planned.append(PlannedFile(options.certs_dir / certs_dir.client_cert_name(user), issued.cert_pem))
    return _write_all(planned, options.overwrite)
