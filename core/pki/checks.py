"""Checks run before anything is uploaded: a bad file found here never reaches a node.

Chains are verified with cryptography's own verifier at "now" and at a later instant
(the end of the rotation's wait), because a bundle that is fine today can be missing
the CA a leaf needs next month.
"""

from __future__ import annotations

import datetime as dt

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.verification import ExtensionPolicy, PolicyBuilder, Store, VerificationError

from core.errors import BadInput
from core.pki.builder import NODE_USER, common_name
from core.pki.keys import PrivateKey, key_matches_certificate


def check_key_matches(certificate: x509.Certificate, key: PrivateKey, cert_source: str, key_source: str) -> None:
    if not key_matches_certificate(key, certificate.public_key()):
        raise BadInput(f"{key_source} does not match {cert_source}: they are not a key pair.")


def check_not_expired(certificate: x509.Certificate, source: str, now: dt.datetime) -> None:
    if certificate.not_valid_after_utc <= now:
        raise BadInput(f"{source} expired on {certificate.not_valid_after_utc:%Y-%m-%d}.")
    if certificate.not_valid_before_utc > now:
        raise BadInput(f"{source} is not valid before {certificate.not_valid_before_utc:%Y-%m-%d %H:%M} UTC.")


def check_node_principal(certificate: x509.Certificate, source: str) -> None:
    """CockroachDB maps a node's own connections to the `node` user by CN (or a SAN of that name)."""
    if common_name(certificate) == NODE_USER:
        return
    try:
        sans = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        if NODE_USER in sans.get_values_for_type(x509.DNSName):
            return
    except x509.ExtensionNotFound:
        pass
    raise BadInput(
        f"{source} does not carry the 'node' principal (CN=node); CockroachDB nodes would reject each other."
    )


def _has_eku(certificate: x509.Certificate, oid: x509.ObjectIdentifier) -> bool:
    try:
        return oid in certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return True  # no EKU means any usage


def check_chain(
    leaf: x509.Certificate,
    trusted: list[x509.Certificate],
    source: str,
    *,
    at: list[dt.datetime],
    client: bool,
) -> None:
    """The leaf chains to one of `trusted` at every instant in `at`.

    Leaves are checked with a permissive end-entity policy: cockroach client certificates
    carry no SAN, which the Web PKI profile would reject. EKU is checked here instead.
    """
    wanted = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
    if not _has_eku(leaf, wanted):
        raise BadInput(f"{source} lacks the {'clientAuth' if client else 'serverAuth'} extended key usage.")
    if not trusted:
        raise BadInput("The trust bundle is empty.")
    store = Store(trusted)
    for instant in at:
        verifier = (
            PolicyBuilder()
            .store(store)
            .time(instant)
            .extension_policies(ca_policy=ExtensionPolicy.webpki_defaults_ca(), ee_policy=ExtensionPolicy.permit_all())
            .build_client_verifier()
        )
        try:
            verifier.verify(leaf, [])
        except VerificationError as error:
            when = "now" if instant is at[0] else f"on {instant:%Y-%m-%d}"
            raise BadInput(f"{source} does not chain to the trusted CA bundle {when}: {_reason(error)}.") from None


def _reason(error: VerificationError) -> str:
    text = str(error)
    if "candidates exhausted" in text or "no issuer" in text.lower():
        return "no CA in the bundle issued it"
    if "expired" in text or "validity" in text or "not valid at validation time" in text:
        return "a certificate in the chain is outside its validity period"
    return text.split(" (encountered")[0]


NEAR_FUTURE = dt.timedelta(days=7)


def check_leaf_files(cert_pem: bytes, key_pem: bytes | None, bundle_pem: bytes, source: str, *, now: dt.datetime,
                     client: bool, node_principal: bool = False) -> None:
    """Everything a node or client checks when it loads these files, checked before they leave us.

    `key_pem` None: the key stays on the node (its CSR proved it; core.signers.issue checked the match)."""
    from core.pki.bundle import parse_bundle, parse_certificates
    from core.pki.keys import load_private_key

    certificate = parse_certificates(cert_pem, source)[0].certificate
    if key_pem is not None:
        key = load_private_key(key_pem, f"the key of {source}")
        check_key_matches(certificate, key, source, f"the key of {source}")
    check_not_expired(certificate, source, now)
    if node_principal:
        check_node_principal(certificate, source)
    trusted = parse_bundle(bundle_pem, "the CA bundle it will be served with").certificates
    check_chain(certificate, trusted, source, at=[now, now + NEAR_FUTURE], client=client)
