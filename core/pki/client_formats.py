"""A client's certificate and key in the forms its driver reads: PEM, PKCS#8 DER, PKCS#12.

Client stacks keep their identity in different files. libpq, psycopg, node-postgres and
Go read `client.<user>.crt` + `client.<user>.key` (PEM; the key PKCS#1 for RSA, as
`cockroach cert` writes it); PgJDBC wants the key as DER PKCS#8 (`client.<user>.key.pk8`,
what `cockroach cert create-client --also-generate-pkcs8-key` writes); Java keystores,
.NET and GUI tools take a PKCS#12 bundle (`client.<user>.p12`) with the certificate, the
key and the CA bundle, and a PKCS#12 truststore of the CA bundle (`ca.p12`).

Everything here takes values and returns file names with their bytes; a client's files
are always built together from one certificate and key, so no form can lag behind the
others. The PKCS#12 password is an argument and never part of a name, a repr or an error.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from core.errors import BadInput
from core.pki.bundle import parse_certificates
from core.pki.certs_dir import CA_CERT, client_cert_name, client_key_name
from core.pki.keys import PrivateKey, key_matches_certificate, load_private_key, private_key_der_pkcs8
from core.pki.rules import DEFAULT_FORMATS, FORMATS

CA_TRUSTSTORE = "ca.p12"  # the CA bundle as a PKCS#12 truststore (Java, .NET), beside ca.crt
PUBLIC, PRIVATE = 0o644, 0o600


def pk8_name(user: str) -> str:
    return client_key_name(user) + ".pk8"


def p12_name(user: str) -> str:
    return f"client.{user}.p12"


def format_of(file_name: str, user: str) -> str | None:
    """Which format a client file of `user` belongs to (None: not one of its key-bearing files)."""
    return {client_key_name(user): "pem", pk8_name(user): "pk8", p12_name(user): "p12"}.get(file_name)


def key_files(user: str) -> dict[str, str]:
    """Every file that carries `user`'s private key, by format; each must be refreshed with the certificate."""
    return {"pem": client_key_name(user), "pk8": pk8_name(user), "p12": p12_name(user)}


@dataclass(frozen=True)
class ClientIdentity:
    """One client's new certificate, its key and the CA bundle it verifies servers with."""

    user: str
    cert_pem: bytes
    key_pem: bytes
    ca_bundle_pem: bytes | None = None

    def __repr__(self) -> str:
        return f"ClientIdentity(user={self.user!r})"


def _key(identity: ClientIdentity) -> PrivateKey:
    return load_private_key(identity.key_pem, client_key_name(identity.user))


def _ca_certificates(bundle_pem: bytes | None) -> list[x509.Certificate]:
    if not bundle_pem:
        return []
    return [entry.certificate for entry in parse_certificates(bundle_pem, CA_CERT)]


def _encryption(password: bytes) -> serialization.KeySerializationEncryption:
    # AES-256 with PBKDF2 (PBES2): what OpenSSL 3, Java 17 and .NET read. The legacy RC2/3DES
    # scheme of BestAvailableEncryption's default would fail on OpenSSL 3 without its legacy provider.
    return (serialization.PrivateFormat.PKCS12.encryption_builder()
            .kdf_rounds(50000).key_cert_algorithm(pkcs12.PBES.PBESv2SHA256AndAES256CBC)
            .hmac_hash(hashes.SHA256())
            .build(password))


def p12_bundle(identity: ClientIdentity, password: bytes) -> bytes:
    """client.<user>.p12: the certificate and key under the alias <user>, with the CA bundle as its chain."""
    if not password:
        raise BadInput(f"client {identity.user}: a PKCS#12 file needs a password; put one in p12_password_file.")
    cert = x509.load_pem_x509_certificate(identity.cert_pem)
    return pkcs12.serialize_key_and_certificates(identity.user.encode(), _key(identity), cert,
                                                 _ca_certificates(identity.ca_bundle_pem) or None,
                                                 _encryption(password))


def p12_truststore(bundle_pem: bytes, password: bytes) -> bytes:
    """ca.p12: every CA of the bundle as a trusted entry, in the form Java's KeyStore loads as trusted."""
    if not password:
        raise BadInput("A PKCS#12 truststore needs a password; put one in p12_password_file.")
    cas = [pkcs12.PKCS12Certificate(cert, f"ca-{index}".encode())
           for index, cert in enumerate(_ca_certificates(bundle_pem))]
    return pkcs12.serialize_java_truststore(cas, _encryption(password))


def client_files(identity: ClientIdentity, formats: tuple[str, ...] | list[str] | set[str],
                 p12_password: bytes | None) -> dict[str, tuple[bytes, int]]:
    """The files of one client for `formats`: keys first, then certificates (the order they are committed in).

    client.<user>.crt always goes out (every form but PKCS#12 reads the certificate from it);
    ca.crt goes out when a CA bundle is given, and ca.p12 beside it when `p12` is asked for.
    """
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown:
        raise BadInput(f"client {identity.user}: unknown format {unknown[0]!r}; choose from {', '.join(FORMATS)}.")
    files: dict[str, tuple[bytes, int]] = {}
    if "pem" in formats:
        files[client_key_name(identity.user)] = (identity.key_pem, PRIVATE)
    if "pk8" in formats:
        files[pk8_name(identity.user)] = (private_key_der_pkcs8(_key(identity)), PRIVATE)
    if "p12" in formats:
        files[p12_name(identity.user)] = (p12_bundle(identity, p12_password or b""), PRIVATE)
    if identity.ca_bundle_pem:
        files[CA_CERT] = (identity.ca_bundle_pem, PUBLIC)
        if "p12" in formats:
            files[CA_TRUSTSTORE] = (p12_truststore(identity.ca_bundle_pem, p12_password or b""), PUBLIC)
    files[client_cert_name(identity.user)] = (identity.cert_pem, PUBLIC)
    return files


def bundle_files(bundle_pem: bytes, formats: tuple[str, ...] | list[str] | set[str],
                 p12_password: bytes | None) -> dict[str, tuple[bytes, int]]:
    """The CA bundle in the forms a client has: ca.crt, and ca.p12 when it uses PKCS#12."""
    files = {CA_CERT: (bundle_pem, PUBLIC)}
    if "p12" in formats:
        files = {CA_TRUSTSTORE: (p12_truststore(bundle_pem, p12_password or b""), PUBLIC), **files}
    return files


# -- reading them back (doctor, tests) ---------------------------------------------------------


def pk8_key(data: bytes, source: str) -> PrivateKey:
    """The key of a DER PKCS#8 file; one sentence when it is not one (its bytes never appear)."""
    try:
        return serialization.load_der_private_key(data, password=None)  # type: ignore[return-value]
    except (ValueError, TypeError):
        raise BadInput(f"{source} is not a readable DER PKCS#8 private key.") from None


def p12_contents(data: bytes, password: bytes | None, source: str) -> pkcs12.PKCS12KeyAndCertificates:
    """What a PKCS#12 file holds; a wrong password or a damaged file is one sentence."""
    try:
        return pkcs12.load_pkcs12(data, password or None)
    except (ValueError, TypeError):
        raise BadInput(f"{source} cannot be opened: the password is wrong or the file is not PKCS#12.") from None


def key_mismatch(key: PrivateKey | None, cert: x509.Certificate, key_source: str, cert_source: str) -> str | None:
    """Why `key` cannot be used with `cert` (a sentence naming both files), or None when they match."""
    if key is None:
        return f"{key_source} holds no private key"
    if not key_matches_certificate(key, cert.public_key()):
        return f"{key_source} holds a key that does not match {cert_source}"
    return None
