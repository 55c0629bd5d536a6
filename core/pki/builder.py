"""Issue CA, node and client certificates with the `cockroach cert` profile.

Certificate kinds differ only in data (a `Profile`), so one builder serves them all.
What CockroachDB, OpenSSL and Go's crypto/tls need and why:
- notBefore is backdated 24 h, as cockroach does, so a node whose clock runs behind
  the operator's still accepts a freshly issued certificate;
- every CA has a Subject Key Identifier and every leaf an Authority Key Identifier:
  during a rotation two CAs with similar names sit in one bundle, and OpenSSL picks
  the issuer by AKID before it falls back to the name;
- a leaf never outlives its CA: verification would fail on the day the CA expires,
  long before anyone looks at the leaf's own date.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
import secrets
from dataclasses import dataclass, field
from typing import Callable

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from core.errors import BadInput
from core.pki.keys import DEFAULT_KEY_TYPE, PrivateKey, PublicKey, generate_private_key, private_key_pem
from core.pki.rules import CA_LIFETIME, LEAF_LIFETIME, check_user_name

ORGANIZATION = "Cockroach"
BACKDATE = dt.timedelta(hours=24)
DAY = dt.timedelta(days=1)
NODE_USER = "node"


@dataclass(frozen=True)
class Profile:
    """What distinguishes one kind of certificate from another."""

    kind: str
    is_ca: bool
    extended_key_usage: tuple[x509.ObjectIdentifier, ...] = ()
    fixed_common_name: str | None = None  # the CN every certificate of this kind carries (node: "node")


CA_PROFILE = Profile("ca", is_ca=True)
CLIENT_CA_PROFILE = Profile("client-ca", is_ca=True)
NODE_PROFILE = Profile(
    "node", is_ca=False, extended_key_usage=(ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH),
    fixed_common_name=NODE_USER,
)
# Split node certificates: for organisational CAs that refuse to sign a server certificate
# with CN=node. node.crt then only serves (SANs, serverAuth) and client.node.crt (CN=node,
# clientAuth, CLIENT_PROFILE) carries the node's identity when it dials other nodes.
SPLIT_NODE_PROFILE = Profile("node-split", is_ca=False, extended_key_usage=(ExtendedKeyUsageOID.SERVER_AUTH,))
NODE_PROFILES = {"combined": NODE_PROFILE, "split": SPLIT_NODE_PROFILE}
CLIENT_PROFILE = Profile("client", is_ca=False, extended_key_usage=(ExtendedKeyUsageOID.CLIENT_AUTH,))


@dataclass(frozen=True)
class Issued:
    """A certificate with its private key. The key never appears in repr()."""

    certificate: x509.Certificate
    key: PrivateKey = field(repr=False)

    @property
    def cert_pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def key_pem(self, *, pkcs8: bool = False) -> bytes:
        return private_key_pem(self.key, pkcs8=pkcs8)

    @property
    def fingerprint(self) -> str:
        return sha256_fingerprint(self.certificate)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def sha256_fingerprint(certificate: x509.Certificate) -> str:
    return certificate.fingerprint(hashes.SHA256()).hex()


def random_serial() -> int:
    """A random positive 128-bit serial, as cockroach draws them."""
    return secrets.randbits(128) or 1


_DNS_LABEL = re.compile(r"^(\*|[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)$")


def subject_alternative_names(addresses: list[str]) -> list[x509.GeneralName]:
    """Split host addresses into IP and DNS SANs; refuse what is neither."""
    names: list[x509.GeneralName] = []
    for address in addresses:
        address = address.strip()
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(address.strip("[]"))))
            continue
        except ValueError:
            pass
        labels = address.rstrip(".").split(".")
        if not address or len(address) > 253 or not all(_DNS_LABEL.match(label) for label in labels):
            raise BadInput(f"{address!r} is neither an IP address nor a valid DNS name.")
        if "*" in labels[1:]:
            raise BadInput(f"{address!r}: a wildcard may only be the left-most label.")
        names.append(x509.DNSName(address.rstrip(".").lower()))
    return names


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _public(key: PrivateKey | PublicKey) -> PublicKey:
    return key.public_key() if hasattr(key, "private_bytes") else key  # type: ignore[union-attr, return-value]


def _key_usage(profile: Profile, key: PrivateKey | PublicKey) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not profile.is_ca,
        content_commitment=profile.is_ca,  # cockroach sets it on CAs; harmless elsewhere
        key_encipherment=not profile.is_ca and isinstance(_public(key), rsa.RSAPublicKey),
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=profile.is_ca,
        crl_sign=profile.is_ca,
        encipher_only=False,
        decipher_only=False,
    )


def _validity(lifetime: dt.timedelta, now: dt.datetime, issuer: x509.Certificate | None) -> tuple[dt.datetime, dt.datetime]:
    if lifetime <= dt.timedelta(0):
        raise BadInput("The certificate lifetime must be positive.")
    not_before = (now - BACKDATE).replace(microsecond=0)
    not_after = (now + lifetime).replace(microsecond=0)
    if issuer is not None:
        ca_end = issuer.not_valid_after_utc
        if ca_end <= now:
            raise BadInput(f"The CA expired on {ca_end:%Y-%m-%d}; rotate the CA before issuing from it.")
        if not_after > ca_end:
            raise BadInput(
                f"The requested lifetime ends {not_after:%Y-%m-%d}, after the CA itself expires "
                f"({ca_end:%Y-%m-%d}); shorten --lifetime or rotate the CA first."
            )
    return not_before, not_after


def build_certificate(
    profile: Profile,
    *,
    common_name: str | None,
    key: PrivateKey | PublicKey,
    lifetime: dt.timedelta,
    now: dt.datetime,
    issuer: Issued | None = None,
    sans: list[x509.GeneralName] | None = None,
    ocsp_url: str | None = None,
    subject: x509.Name | None = None,
    self_signer: Callable[[x509.CertificateBuilder], x509.Certificate] | None = None,
) -> x509.Certificate:
    """The one builder every kind goes through; `issuer=None` makes a self-signed CA.

    `key` is the subject's key; its public half is enough when the issuer signs (a CSR's key,
    made on a node). An issuer without a `key` (core.signers: a CA key in a token) signs the
    builder itself through `sign_builder`. `subject` replaces O=Cockroach,CN=<common_name>
    (an organisation's subject policy). `self_signer` signs a self-signed CA whose key is
    in a token (only its public half is `key`).
    """
    issuer_cert = issuer.certificate if issuer else None
    not_before, not_after = _validity(lifetime, now, issuer_cert)
    if subject is None:
        subject = _name(common_name) if common_name else x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION)])
    public_key = _public(key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_cert.subject if issuer_cert else subject)
        .public_key(public_key)
        .serial_number(random_serial())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(
            x509.BasicConstraints(ca=profile.is_ca, path_length=1 if profile.is_ca else None), critical=True
        )
        .add_extension(_key_usage(profile, key), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )
    authority_public = issuer_cert.public_key() if issuer_cert is not None else public_key
    builder = builder.add_extension(
        x509.AuthorityKeyIdentifier.from_issuer_public_key(authority_public), critical=False
    )
    if profile.extended_key_usage:
        builder = builder.add_extension(x509.ExtendedKeyUsage(list(profile.extended_key_usage)), critical=False)
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    if ocsp_url:
        builder = builder.add_extension(
            x509.AuthorityInformationAccess(
                [x509.AccessDescription(x509.oid.AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(ocsp_url))]
            ),
            critical=False,
        )
    if issuer is not None and not isinstance(issuer, Issued):
        return issuer.sign_builder(builder)
    if issuer is None and self_signer is not None:
        return self_signer(builder)
    signing_key = issuer.key if issuer else key
    return builder.sign(signing_key, hashes.SHA256())


def issue_ca(
    *,
    key_type: str = DEFAULT_KEY_TYPE,
    lifetime: dt.timedelta = CA_LIFETIME,
    now: dt.datetime | None = None,
    common_name: str = "Cockroach CA",
    key: PrivateKey | None = None,
    client_ca: bool = False,
) -> Issued:
    key = key or generate_private_key(key_type)
    profile = CLIENT_CA_PROFILE if client_ca else CA_PROFILE
    cert = build_certificate(profile, common_name=common_name, key=key, lifetime=lifetime, now=now or utcnow())
    return Issued(cert, key)


def issue_node(
    ca: Issued,
    addresses: list[str],
    *,
    key_type: str = DEFAULT_KEY_TYPE,
    lifetime: dt.timedelta = LEAF_LIFETIME,
    now: dt.datetime | None = None,
    with_node_principal: bool = True,
    ocsp_url: str | None = None,
    profile: Profile = NODE_PROFILE,
    subject: x509.Name | None = None,
) -> Issued:
    """node.crt: CN=node with the node's addresses as SANs; `profile=SPLIT_NODE_PROFILE` (or the older
    `with_node_principal=False`) for the split layout's node.crt without CN."""
    if not addresses:
        raise BadInput("A node certificate needs at least one host address (DNS name or IP).")
    key = generate_private_key(key_type)
    cert = build_certificate(
        profile,
        common_name=profile.fixed_common_name if with_node_principal else None,
        key=key,
        lifetime=lifetime,
        now=now or utcnow(),
        issuer=ca,
        sans=subject_alternative_names(addresses),
        ocsp_url=ocsp_url,
        subject=subject,
    )
    return Issued(cert, key)


def issue_client(
    ca: Issued,
    user: str,
    *,
    key_type: str = DEFAULT_KEY_TYPE,
    lifetime: dt.timedelta = LEAF_LIFETIME,
    now: dt.datetime | None = None,
    ocsp_url: str | None = None,
    subject: x509.Name | None = None,
) -> Issued:
    """client.<user>.crt: CN=<user>, clientAuth only."""
    key = generate_private_key(key_type)
    cert = build_certificate(
        CLIENT_PROFILE,
        common_name=check_user_name(user),
        key=key,
        lifetime=lifetime,
        now=now or utcnow(),
        issuer=ca,
        ocsp_url=ocsp_url,
        subject=subject,
    )
    return Issued(cert, key)


def common_name(certificate: x509.Certificate) -> str | None:
    values = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(values[0].value) if values else None


def san_strings(certificate: x509.Certificate) -> list[str]:
    try:
        ext = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return [str(v) for v in ext.get_values_for_type(x509.DNSName)] + [
        str(v) for v in ext.get_values_for_type(x509.IPAddress)
    ]


def is_ca_certificate(certificate: x509.Certificate) -> bool:
    try:
        return certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False
