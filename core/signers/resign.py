"""Signing a certificate with a key that cryptography cannot hold (a key inside a token).

cryptography's CertificateBuilder signs only with its own key objects. So the builder is
signed once with a throwaway key of the CA key's family, which fixes the to-be-signed
bytes (the signature algorithm is part of them: sha256WithRSAEncryption or
ecdsa-with-SHA256); then asn1crypto swaps in the signature the token makes over exactly
those bytes. The result is verified against the CA's public key before anyone sees it.
"""

from __future__ import annotations

import functools
from typing import Callable

from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from core.errors import StepFailed
from core.pki.keys import PublicKey


@functools.cache
def _throwaway(family: str) -> rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey:
    """Never signs anything that is kept: only makes the template whose signature is replaced."""
    if family == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return ec.generate_private_key(ec.SECP256R1())


def family_of(public_key: PublicKey) -> str:
    return "rsa" if isinstance(public_key, rsa.RSAPublicKey) else "ec"


def sign_builder_with(builder: x509.CertificateBuilder, ca_public_key: PublicKey,
                      sign_tbs: Callable[[bytes], bytes], *, source: str) -> x509.Certificate:
    """The builder's certificate, signed over its TBS bytes by `sign_tbs` (DER signature for EC, raw for RSA)."""
    template = builder.sign(_throwaway(family_of(ca_public_key)), hashes.SHA256())
    parsed = asn1_x509.Certificate.load(template.public_bytes(serialization.Encoding.DER))
    tbs = parsed["tbs_certificate"].dump()
    parsed["signature_value"] = sign_tbs(tbs)
    certificate = x509.load_der_x509_certificate(parsed.dump(force=True))
    _verify(certificate, tbs, ca_public_key, source)
    return certificate


def _verify(certificate: x509.Certificate, tbs: bytes, ca_public_key: PublicKey, source: str) -> None:
    from cryptography.hazmat.primitives.asymmetric import padding

    try:
        if isinstance(ca_public_key, rsa.RSAPublicKey):
            ca_public_key.verify(certificate.signature, tbs, padding.PKCS1v15(), hashes.SHA256())
        else:
            ca_public_key.verify(certificate.signature, tbs, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise StepFailed(f"{source} returned a signature that the CA's public key does not verify; "
                         "check that the token key is the CA's.") from None
