"""What a signer is asked for, and what every signer's answer must satisfy.

A request always carries a CSR: it proves the requester holds the private key (a node that
made its key itself, or certrotate for a key made here), and it is the form every external
CA takes. Local and token signers read the public key from it and build the certificate
with certrotate's own profile; CFSSL and manual CAs sign it with theirs, which is why the
answer is checked against the request rather than trusted.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from core import pki
from core.pki.keys import PrivateKey, PublicKey


@dataclass(frozen=True)
class CertificateRequest:
    """One certificate to be signed, in the words an operator (and an external CA) understands."""

    profile: pki.Profile
    subject: x509.Name
    sans: tuple[x509.GeneralName, ...]
    csr: x509.CertificateSigningRequest
    lifetime: dt.timedelta
    now: dt.datetime
    label: str  # "the new node.crt of n1": how messages name it
    request_path: Path | None = None  # where a manual CA finds the CSR (and the signed certificate beside it)
    ocsp_url: str | None = None
    dry_run: bool = False  # a preview: a manual CA writes no CSR

    @property
    def public_key(self) -> PublicKey:
        return self.csr.public_key()  # type: ignore[return-value]

    @property
    def csr_pem(self) -> bytes:
        return self.csr.public_bytes(serialization.Encoding.PEM)


@runtime_checkable
class Signer(Protocol):
    """A CA that signs requests (CFSSL, manual); `certificate` is the CA certificate it signs with."""

    name: str
    certificate: x509.Certificate

    def sign(self, request: CertificateRequest) -> x509.Certificate: ...


def make_csr(key: PrivateKey, subject: x509.Name, sans: tuple[x509.GeneralName, ...]) -> x509.CertificateSigningRequest:
    builder = x509.CertificateSigningRequestBuilder().subject_name(subject)
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(sans)), critical=False)
    return builder.sign(key, hashes.SHA256())


def build_from_request(ca: pki.Issued, request: CertificateRequest) -> x509.Certificate:
    """A CA certrotate can sign with (a key file, or a token through `sign_builder`): certrotate's own profile."""
    return pki.build_certificate(request.profile, common_name=None, subject=request.subject, key=request.public_key,
                                 lifetime=request.lifetime, now=request.now, issuer=ca,
                                 sans=list(request.sans) or None, ocsp_url=request.ocsp_url)


class CaObject:
    """What the engine reads from any CA object, as from `pki.Issued`."""

    certificate: x509.Certificate

    @property
    def cert_pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    @property
    def fingerprint(self) -> str:
        return pki.sha256_fingerprint(self.certificate)
