"""Doctor checks for a client's other key forms: client.<user>.key.pk8 and client.<user>.p12.

A rotation that replaced client.<user>.crt/.key but not the .pk8 or .p12 beside them
leaves a Java, .NET or GUI client presenting the new certificate with the old key; the
server then refuses the handshake (`decrypt_error`, `bad certificate`). Each file found is
checked against the certificate beside it: a key that does not match is a FAIL with the
cause and the fix. No finding carries key material or the PKCS#12 password.
"""

from __future__ import annotations

from pathlib import Path

from cryptography import x509

from core.errors import BadInput
from core.findings import FAIL, OK, SKIP, Finding
from core.pki import client_formats
from core.pki.certs_dir import client_cert_name, client_key_name
from core.pki.keys import key_matches_certificate

_WRONG_KEY_CAUSE = ("a client that reads it presents {crt} with another key, and the server refuses the handshake "
                    "(decrypt_error or bad certificate)")


def _pk8_finding(path: Path, cert: x509.Certificate, user: str) -> tuple[str, str, str]:
    crt = client_cert_name(user)
    try:
        key = client_formats.pk8_key(path.read_bytes(), path.name)
    except (BadInput, OSError) as error:
        return FAIL, "client-pk8", f"{error if isinstance(error, BadInput) else f'cannot read {path}'}"
    if key_matches_certificate(key, cert.public_key()):
        return OK, "client-pk8", f"{path.name} matches {crt}."
    return FAIL, "client-pk8", (
        f"{path.name} does not match {crt}: " + _WRONG_KEY_CAUSE.format(crt=crt) + ". Fix: write it again from "
        f"{client_key_name(user)} (openssl pkcs8 -topk8 -nocrypt -outform DER -in {client_key_name(user)} -out "
        f'{path.name}), and list "pk8" in the client\'s formats so every rotation refreshes it.')


def _p12_finding(path: Path, cert: x509.Certificate, user: str, password: bytes | None) -> tuple[str, str, str]:
    crt = client_cert_name(user)
    try:
        contents = client_formats.p12_contents(path.read_bytes(), password, path.name)
    except BadInput as error:
        if password is None:
            return SKIP, "client-p12", f"{path.name} needs its password to be checked; give --p12-password-file."
        return FAIL, "client-p12", str(error)
    except OSError:
        return FAIL, "client-p12", f"cannot read {path}."
    bundled = contents.cert.certificate if contents.cert else None
    fix = (f'Fix: list "p12" in the client\'s formats with its p12_password_file and rotate its certificate '
           f"(certrotate start clients), or rebuild it (openssl pkcs12 -export -in {crt} -inkey "
           f"{client_key_name(user)} -out {path.name}).")
    if contents.key is None:
        return FAIL, "client-p12", f"{path.name} holds no private key, so no client can present {crt} with it. {fix}"
    if not key_matches_certificate(contents.key, cert.public_key()):  # type: ignore[arg-type]
        return FAIL, "client-p12", f"{path.name} holds a key that does not match {crt}: " + \
            _WRONG_KEY_CAUSE.format(crt=crt) + f". {fix}"
    if bundled is not None and bundled != cert:
        return FAIL, "client-p12", (f"{path.name} holds another certificate than {crt} (an older one?), with its "
                                    f"matching key; clients reading it present that one. {fix}")
    return OK, "client-p12", f"{path.name} holds {crt} and its key."


def check_key_forms(certs_dir: Path, user: str, cert: x509.Certificate,
                    p12_password: bytes | None = None) -> list[Finding]:
    """A finding for each of client.<user>.key.pk8 and client.<user>.p12 present in `certs_dir`."""
    findings = []
    pk8 = certs_dir / client_formats.pk8_name(user)
    if pk8.exists():
        findings.append(Finding(*_pk8_finding(pk8, cert, user)))
    p12 = certs_dir / client_formats.p12_name(user)
    if p12.exists():
        findings.append(Finding(*_p12_finding(p12, cert, user, p12_password)))
    return findings
