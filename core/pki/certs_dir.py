"""A cockroach-style certs directory: file names, what each file is, and listing it.

CockroachDB finds its files by name alone, so names are the interface: `ca.crt`,
`ca-client.crt`, `ca-ui.crt`, `node.crt`/`node.key`, `ui.crt`/`ui.key`,
`client.<user>.crt`/`.key` (`client.node.crt` for split node certificates).
Anything else — including our own temp files and backup dir, which start with a dot
so cockroach ignores them — is not ours to list.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from core import files
from core.errors import BadInput
from core.findings import FAIL, WARN, expiry_level
from core.pki import bundle
from core.pki.builder import Issued, common_name, san_strings
from core.pki.bundle import parse_certificates
from core.pki.checks import check_key_matches
from core.pki.keys import key_matches_certificate, load_private_key

CA_CERT = "ca.crt"
CLIENT_CA_CERT = "ca-client.crt"
UI_CA_CERT = "ca-ui.crt"
NODE_CERT, NODE_KEY = "node.crt", "node.key"
UI_CERT, UI_KEY = "ui.crt", "ui.key"

# cockroach refuses keys readable by anyone but the owner; a root-owned key may be group-readable
# so a service group can read it (its `maxGroupKeyPermissions`).
OWNER_ONLY = 0o700
ROOT_OWNED_GROUP_READ = 0o740

_CLIENT_CERT = re.compile(r"^client\.(?P<user>[^/]+)\.crt$")


def client_cert_name(user: str) -> str:
    return f"client.{user}.crt"


def client_key_name(user: str) -> str:
    return f"client.{user}.key"


# The split layout's outbound certificate: what a node presents when it dials another node.
CLIENT_NODE_CERT, CLIENT_NODE_KEY = client_cert_name("node"), client_key_name("node")


@dataclass(frozen=True)
class CertFileKind:
    usage: str
    key_file: str | None
    is_ca: bool


def classify(file_name: str) -> CertFileKind | None:
    """What cockroach would use this file for, or None if it ignores it."""
    fixed = {
        CA_CERT: CertFileKind("CA", None, True),
        CLIENT_CA_CERT: CertFileKind("Client CA", None, True),
        UI_CA_CERT: CertFileKind("UI CA", None, True),
        NODE_CERT: CertFileKind("Node", NODE_KEY, False),
        UI_CERT: CertFileKind("UI", UI_KEY, False),
    }
    if file_name in fixed:
        return fixed[file_name]
    match = _CLIENT_CERT.match(file_name)
    if match:
        return CertFileKind("Client", client_key_name(match.group("user")), False)
    return None


def key_permission_problem(path: Path) -> str | None:
    """cockroach's key permission rule, as a sentence, or None when the key is acceptable."""
    if os.environ.get("COCKROACH_SKIP_KEY_PERMISSION_CHECK", "").lower() in ("1", "true"):
        return None
    info = path.stat()
    mode = stat.S_IMODE(info.st_mode)
    allowed = ROOT_OWNED_GROUP_READ if info.st_uid == 0 else OWNER_ONLY
    if mode & ~allowed:
        return (
            f"key file {path.name} has permissions {stat.filemode(info.st_mode)}, "
            f"exceeds {stat.filemode(stat.S_IFREG | allowed)}"
        )
    return None


@dataclass(frozen=True)
class CertListing:
    usage: str
    cert_file: str
    key_file: str
    expires: dt.datetime | None
    notes: str
    error: str
    certificates: tuple[x509.Certificate, ...] = ()

    def expiry_flag(self, now: dt.datetime, warn_days: int) -> str:
        """The note `cert list` adds: the same judgement as doctor's expiry finding, in two words."""
        if self.expires is None:
            return ""
        level = expiry_level(self.expires, now, warn_days=warn_days)
        if level == FAIL:
            return "EXPIRED"
        return f"expires in {(self.expires - now).days} days" if level == WARN else ""


def _notes(kind: CertFileKind, certificates: list[x509.Certificate]) -> str:
    if kind.is_ca:
        return f"num certs: {len(certificates)}"
    leaf = certificates[0]
    if kind.usage == "Client":
        return f"user: {common_name(leaf)}"
    return "addresses: " + ",".join(san_strings(leaf))


def _key_error(directory: Path, kind: CertFileKind, leaf: x509.Certificate) -> str:
    if kind.key_file is None:
        return ""
    key_path = directory / kind.key_file
    if not key_path.exists():
        return f"key file {kind.key_file} not found"
    problem = key_permission_problem(key_path)
    if problem:
        return problem
    try:
        key = load_private_key(key_path.read_bytes(), kind.key_file)
    except BadInput as error:
        return str(error)
    except OSError as error:
        return f"cannot read {kind.key_file}: {error.strerror}"
    if not key_matches_certificate(key, leaf.public_key()):
        return f"{kind.key_file} does not match {leaf.subject.rfc4514_string()}"
    return ""


def list_certs_dir(directory: Path) -> list[CertListing]:
    """Every certificate file cockroach would use, in cockroach's order: CAs, node, UI, clients."""
    directory = Path(directory)
    if not directory.is_dir():
        raise BadInput(f"Certs directory {directory} does not exist.")
    order = {"CA": 0, "Client CA": 1, "UI CA": 2, "Node": 3, "UI": 4, "Client": 5}
    listings = []
    for path in sorted(directory.iterdir()):
        kind = classify(path.name)
        if kind is None or not path.is_file():
            continue
        try:
            certificates = [e.certificate for e in parse_certificates(path.read_bytes(), path.name)]
        except (BadInput, OSError) as error:
            message = str(error) if isinstance(error, BadInput) else f"cannot read: {error.strerror}"
            listings.append(CertListing(kind.usage, path.name, kind.key_file or "", None, "", message))
            continue
        expires = min(c.not_valid_after_utc for c in certificates)
        listings.append(
            CertListing(
                kind.usage,
                path.name,
                kind.key_file or "",
                expires,
                _notes(kind, certificates),
                _key_error(directory, kind, certificates[0]),
                tuple(certificates),
            )
        )
    return sorted(listings, key=lambda item: (order[item.usage], item.cert_file))


def load_ca(cert_path: Path, key_path: Path, passphrase: bytes | None = None) -> Issued:
    """The first CA of a bundle with its key; a key of another CA is refused."""
    cert_bytes = files.read_bytes(cert_path, "CA certificate")
    ca_bundle = bundle.parse_bundle(cert_bytes, str(cert_path))
    key = load_private_key(files.read_bytes(key_path, "CA key"), str(key_path), passphrase)
    certificate = ca_bundle.entries[0].certificate
    check_key_matches(certificate, key, f"the first CA in {cert_path}", f"CA key {key_path}")
    return Issued(certificate, key)


def client_signing_ca_path(directory: Path) -> Path:
    """Client certificates come from ca-client.crt when the cluster has a separate client CA."""
    client_ca = directory / CLIENT_CA_CERT
    return client_ca if client_ca.exists() else directory / CA_CERT
