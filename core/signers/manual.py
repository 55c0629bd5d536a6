"""The `manual` signer: any CA an organisation runs by hand (an `openssl ca` procedure, AD CS, Vault's UI).

certrotate writes one CSR per certificate into the rotation's `requests/` folder and stops
at a gate; the operator has each one signed and drops the certificate beside its CSR
(`n1.node.csr` → `n1.node.crt`). Every run checks what has arrived (core.signers.issue)
and names what is still missing, so a wrong certificate is refused the moment it is there.
"""

from __future__ import annotations

from pathlib import Path

from cryptography import x509

from core import files
from core.errors import BadInput, CertRotateError
from core.pki import bundle
from core.signers.request import CaObject, CertificateRequest


class AwaitingCertificate(CertRotateError):
    """The CSR is out for signing; its certificate is not back yet. A gate, not a failure."""

    exit_code = 0

    def __init__(self, sentence: str, *, certificate_path: Path):
        super().__init__(sentence)
        self.certificate_path = certificate_path


def certificate_path(request_path: Path) -> Path:
    return request_path.with_suffix(".crt")


class ManualCA(CaObject):
    """The organisation's CA certificate; its signatures come back as files."""

    name = "manual"

    def __init__(self, certificate: x509.Certificate, *, dry_run: bool = False):
        self.certificate = certificate
        self.dry_run = dry_run

    def __repr__(self) -> str:
        return f"ManualCA({self.fingerprint[:16]}…)"

    def sign(self, request: CertificateRequest) -> x509.Certificate:
        if request.request_path is None:
            raise BadInput(f"{request.label} has no place for its CSR; the manual signer needs a rotation's folder.")
        crt = certificate_path(request.request_path)
        if crt.exists():
            entries = bundle.parse_certificates(files.read_bytes(crt, "The signed certificate"), str(crt))
            return entries[0].certificate
        if not (self.dry_run or request.dry_run) and not request.request_path.exists():
            files.write_public(request.request_path, request.csr_pem, overwrite=False)
        raise AwaitingCertificate(f"{request.label}: waiting for {crt.name} beside {request.request_path.name}.",
                                  certificate_path=crt)
