"""What an operator reads off a certificate: subject, SANs, issuer, validity, fingerprint.

The wizard's certificate inspector shows these for local files and for the certificate a
node serves; it never parses certificates itself (the UI imports no cryptography). A file
that holds a private key is refused by name, without a byte of it being shown.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from core import files
from core.pki import is_ca_certificate, san_strings, sha256_fingerprint
from core.pki.bundle import parse_certificates
from core.remote import probes


@dataclass(frozen=True)
class CertificateInfo:
    subject: str
    issuer: str
    sans: tuple[str, ...]
    not_before: dt.datetime
    not_after: dt.datetime
    fingerprint: str  # sha256 of the DER, hex
    serial: str
    is_ca: bool
    key: str  # e.g. "RSA 2048", "EC secp256r1"

    def days_left(self, now: dt.datetime) -> int:
        return (self.not_after - now).days

    @property
    def self_signed(self) -> bool:
        return self.subject == self.issuer


def _key_description(certificate: x509.Certificate) -> str:
    public_key = certificate.public_key()
    size = getattr(public_key, "key_size", None)
    curve = getattr(public_key, "curve", None)
    if curve is not None:
        return f"EC {curve.name}"
    kind = type(public_key).__name__.removeprefix("_").replace("PublicKey", "")
    return f"{kind} {size}" if size else kind


def describe(certificate: x509.Certificate) -> CertificateInfo:
    return CertificateInfo(
        subject=certificate.subject.rfc4514_string(),
        issuer=certificate.issuer.rfc4514_string(),
        sans=tuple(san_strings(certificate)),
        not_before=certificate.not_valid_before_utc,
        not_after=certificate.not_valid_after_utc,
        fingerprint=sha256_fingerprint(certificate),
        serial=f"{certificate.serial_number:x}",
        is_ca=is_ca_certificate(certificate),
        key=_key_description(certificate),
    )


def read_certificate_file(path: Path) -> list[CertificateInfo]:
    """Every certificate in a local PEM file (a bundle gives several); BadInput for anything else."""
    path = Path(path).expanduser()
    data = files.read_bytes(path, "Certificate file")
    return [describe(entry.certificate) for entry in parse_certificates(data, str(path))]


def served_certificates(sql_addr: str, *, timeout: float = probes.DEFAULT_TIMEOUT) -> list[CertificateInfo]:
    """The chain a node presents on its SQL port, leaf first."""
    return [describe(certificate) for certificate in probes.probe_sql(sql_addr, timeout=timeout).chain]
