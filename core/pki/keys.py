"""Private keys of the types CockroachDB accepts, serialised the way `cockroach cert` does."""

from __future__ import annotations

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from core.errors import BadInput, SecretNeeded

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey

KEY_TYPES: dict[str, tuple[str, int | ec.EllipticCurve]] = {
    "rsa-2048": ("rsa", 2048),
    "rsa-3072": ("rsa", 3072),
    "rsa-4096": ("rsa", 4096),
    "ecdsa-p256": ("ec", ec.SECP256R1()),
    "ecdsa-p384": ("ec", ec.SECP384R1()),
}
DEFAULT_KEY_TYPE = "rsa-2048"


def check_key_type(key_type: str) -> str:
    if key_type == "ed25519":
        raise BadInput(
            "Key type ed25519 is not supported: CockroachDB's key parser accepts only RSA and "
            "ECDSA keys; choose one of " + ", ".join(KEY_TYPES) + "."
        )
    if key_type not in KEY_TYPES:
        raise BadInput(f"Unknown key type {key_type!r}; choose one of {', '.join(KEY_TYPES)}.")
    return key_type


def key_type_for_rsa_bits(bits: int) -> str:
    """Map `cockroach cert --key-size` onto our key types."""
    name = f"rsa-{bits}"
    if name not in KEY_TYPES:
        raise BadInput(f"--key-size {bits} is not supported; use 2048, 3072 or 4096.")
    return name


def generate_private_key(key_type: str = DEFAULT_KEY_TYPE) -> PrivateKey:
    family, param = KEY_TYPES[check_key_type(key_type)]
    if family == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=int(param))
    return ec.generate_private_key(param)  # type: ignore[arg-type]


def private_key_pem(key: PrivateKey, *, pkcs8: bool = False, passphrase: bytes | None = None) -> bytes:
    """PEM of a key: PKCS#1 / SEC1 like cockroach by default, PKCS#8 on request or when encrypted."""
    encryption: serialization.KeySerializationEncryption = serialization.NoEncryption()
    if passphrase:
        encryption = serialization.BestAvailableEncryption(passphrase)
        pkcs8 = True  # traditional-format encryption is the weak legacy DEK-Info scheme
    fmt = serialization.PrivateFormat.PKCS8 if pkcs8 else serialization.PrivateFormat.TraditionalOpenSSL
    return key.private_bytes(serialization.Encoding.PEM, fmt, encryption)


def private_key_der_pkcs8(key: PrivateKey) -> bytes:
    """The `.key.pk8` file of `--also-generate-pkcs8-key`: DER PKCS#8, as Java's JDBC driver wants."""
    return key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def load_private_key(data: bytes, source: str, passphrase: bytes | None = None) -> PrivateKey:
    """Parse a PEM key; failures name the file but never echo its content.

    OpenSSL's RSA key check proves p and q prime, 40-70 ms of CPU per 2048-bit key, paid by
    every command that signs or probes. The keys loaded here are the operator's own (the CA
    key, the leaves certrotate made), so the arithmetic check below stands in for it: it
    catches a damaged key file, which would otherwise sign certificates nobody can verify.
    """
    try:
        key = serialization.load_pem_private_key(data, password=passphrase, unsafe_skip_rsa_key_validation=True)
    except TypeError:
        if passphrase is not None:  # a plain key, read while a passphrase is about for encrypted ones
            return load_private_key(data, source)
        raise SecretNeeded(f"{source} is encrypted; give its passphrase (CERTROTATE_CA_KEY_PASSPHRASE, "
                           "--ca-key-passphrase-file FILE, or the wizard's prompt).",
                           secret="passphrase", source=source) from None
    except ValueError:
        if passphrase is not None and b"ENCRYPTED" in data:
            raise SecretNeeded(f"The passphrase for {source} is wrong.", secret="passphrase", source=source,
                               wrong=True) from None
        raise BadInput(f"{source} is not a readable PEM private key.") from None
    if isinstance(key, ed25519.Ed25519PrivateKey):
        raise BadInput(f"{source} is an Ed25519 key, which CockroachDB does not accept.")
    if not isinstance(key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey)):
        raise BadInput(f"{source} holds a {type(key).__name__}; only RSA and ECDSA keys are supported.")
    if isinstance(key, rsa.RSAPrivateKey) and not _rsa_numbers_consistent(key.private_numbers()):
        raise BadInput(f"{source} is a damaged RSA private key (its numbers do not fit together); "
                       "restore it from a backup.")
    return key


def _rsa_numbers_consistent(numbers: rsa.RSAPrivateNumbers) -> bool:
    """n = p·q, e·d ≡ 1 modulo p-1 and q-1, and the CRT values fit: what a flipped bit breaks."""
    p, q, d, e, n = numbers.p, numbers.q, numbers.d, numbers.public_numbers.e, numbers.public_numbers.n
    return (p > 1 and q > 1 and p * q == n and (e * d) % (p - 1) == 1 % (p - 1) and (e * d) % (q - 1) == 1 % (q - 1)
            and numbers.dmp1 == d % (p - 1) and numbers.dmq1 == d % (q - 1) and (numbers.iqmp * q) % p == 1)


def public_key_der(key: PrivateKey | PublicKey) -> bytes:
    public = key.public_key() if hasattr(key, "private_bytes") else key
    return public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def key_matches_certificate(key: PrivateKey, cert_public_key: PublicKey) -> bool:
    return public_key_der(key) == public_key_der(cert_public_key)


def describe_key_type(key: PrivateKey | PublicKey) -> str:
    if isinstance(key, (rsa.RSAPrivateKey, rsa.RSAPublicKey)):
        return f"rsa-{key.key_size}"
    if isinstance(key, (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey)):
        return {"secp256r1": "ecdsa-p256", "secp384r1": "ecdsa-p384"}.get(key.curve.name, f"ecdsa-{key.curve.name}")
    return type(key).__name__
