"""A leaf certificate from any signer, checked before anything uses it.

Every leaf goes the same way whoever signs it: a key (kept beside the rotation's files,
0600, before anything is asked of a CA, so a CSR that waits for a manual CA still has its
key tomorrow), a CSR from that key, the signer's answer, and then the checks a node or
client will make when it loads the files: the key matches, the subject and the SANs are
what was asked for, the extended key usage fits, it is valid now, it is no CA, and it
chains to the CA that was meant to sign it.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from cryptography import x509

from core import files, pki
from core.errors import BadInput
from core.pki import checks
from core.pki.keys import PrivateKey, key_matches_certificate, load_private_key, private_key_pem, public_key_der
from core.signers.request import CertificateRequest, build_from_request, make_csr


def leaf_key(key_path: Path, key_type: str, *, dry_run: bool) -> PrivateKey:
    """The leaf's key: the one an earlier run left at `key_path` (its CSR may be out for signing), else a new one."""
    if key_path.exists():
        try:
            return load_private_key(key_path.read_bytes(), str(key_path))
        except BadInput:
            pass  # a half-written key of a killed run: make a new one
    key = pki.generate_private_key(key_type)
    if not dry_run:
        files.write_private(key_path, private_key_pem(key), overwrite=True)
    return key


def sign(ca, request: CertificateRequest) -> x509.Certificate:
    """Ask the CA object: one that signs requests (CFSSL, manual) answers itself; a CA certrotate can
    sign with (a key file, a token) gets certrotate's own profile."""
    if hasattr(ca, "sign") and not isinstance(ca, pki.Issued):
        return ca.sign(request)
    return build_from_request(ca, request)


def issue_leaf(ca, *, profile: pki.Profile, subject: x509.Name, sans: list[x509.GeneralName], key: PrivateKey,
               lifetime: dt.timedelta, now: dt.datetime, label: str, request_path: Path | None = None,
               ocsp_url: str | None = None, dry_run: bool = False) -> pki.Issued:
    """The leaf for `key`, signed by `ca` and checked."""
    request = CertificateRequest(profile=profile, subject=subject, sans=tuple(sans), csr=make_csr(key, subject, tuple(sans)),
                                 lifetime=lifetime, now=now, label=label, request_path=request_path, ocsp_url=ocsp_url,
                                 dry_run=dry_run)
    certificate = sign(ca, request)
    check_issued(certificate, request, ca.certificate)
    if not key_matches_certificate(key, certificate.public_key()):
        raise BadInput(f"{label} is not for the key it was requested with.")
    return pki.Issued(certificate, key)


def check_issued(certificate: x509.Certificate, request: CertificateRequest, ca_certificate: x509.Certificate) -> None:
    """What a node or client checks when it loads the certificate, checked as soon as it arrives."""
    label = request.label
    if public_key_der(certificate.public_key()) != public_key_der(request.public_key):
        raise BadInput(f"{label} certifies another key than the one in its request.")
    if pki.is_ca_certificate(certificate):
        raise BadInput(f"{label} is a CA certificate, not a leaf; ask the CA for the {request.profile.kind} profile.")
    wanted_cn = _cn(request.subject)
    if wanted_cn is not None and pki.common_name(certificate) != wanted_cn:
        raise BadInput(f"{label} has CN={pki.common_name(certificate)}, not CN={wanted_cn}; CockroachDB maps the "
                       "certificate to its user by the CN, so this one would lock that user out.")
    missing = _missing_sans(certificate, request.sans)
    if missing:
        raise BadInput(f"{label} lacks the SAN(s) {', '.join(missing)}; clients connecting by those names would "
                       "refuse the node.")
    now = pki.utcnow()
    checks.check_not_expired(certificate, label, now)
    is_client = request.profile.kind == "client"
    checks.check_chain(certificate, [ca_certificate], label, at=[now], client=is_client)
    if request.profile.kind == "node":  # a combined node.crt also dials other nodes
        checks.check_chain(certificate, [ca_certificate], label, at=[now], client=True)


def _cn(name: x509.Name) -> str | None:
    values = name.get_attributes_for_oid(x509.oid.NameOID.COMMON_NAME)
    return str(values[0].value) if values else None


def _missing_sans(certificate: x509.Certificate, wanted: tuple[x509.GeneralName, ...]) -> list[str]:
    try:
        present = set(certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
    except x509.ExtensionNotFound:
        present = set()
    return [str(name.value) for name in wanted if name not in present]


def issue_for_csr(ca, *, csr: x509.CertificateSigningRequest, profile: pki.Profile, subject: x509.Name,
                  sans: list[x509.GeneralName], lifetime: dt.timedelta, now: dt.datetime, label: str,
                  request_path: Path | None = None, ocsp_url: str | None = None, dry_run: bool = False) -> x509.Certificate:
    """The certificate for a CSR whose key is elsewhere (made on the node): signed by `ca` and checked.

    The CSR's own signature proves its maker holds the key; its subject and SANs are not
    trusted, the request says what the certificate must carry."""
    if not csr.is_signature_valid:
        raise BadInput(f"The CSR for {label} is not signed by its own key; it was damaged on the way.")
    request = CertificateRequest(profile=profile, subject=subject, sans=tuple(sans), csr=csr, lifetime=lifetime,
                                 now=now, label=label, request_path=request_path, ocsp_url=ocsp_url, dry_run=dry_run)
    certificate = sign(ca, request)
    check_issued(certificate, request, ca.certificate)
    return certificate
