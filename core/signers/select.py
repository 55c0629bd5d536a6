"""Which CA object a rotation signs with, for the cluster's signer.

The engine asks three things, whatever the signer: the CA that signs today (`current_ca`),
the new CA of a CA rotation or first install (`rotation_ca`), and the old CA to prove trust
with (`probe_ca`). Local CAs are `pki.Issued` read with the passphrase from
core.signers.credentials; a token's CA signs inside the token; an organisation's CA
(cfssl, manual) signs requests, and its new CA certificate is the one the operator brought
to `start ca --new-ca FILE`.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from cryptography import x509

from core import files, pki
from core.errors import BadInput
from core.pki import bundle
from core.pki.certs_dir import load_ca
from core.pki.keys import key_matches_certificate, load_private_key, private_key_pem
from core.signers import EXTERNAL_SIGNERS, credentials


def load_local_ca(cert_path: Path, key_path: Path) -> pki.Issued:
    """A CA key file, plain or encrypted (the passphrase from the environment, a file or the wizard)."""
    return load_ca(cert_path, key_path, credentials.passphrase())


def current_ca(ws: Any, *, bundle_path: Path | None = None, key_path: Path | None = None) -> Any:
    """The CA that signs today: the first CA of the local bundle, with its key where the signer keeps it."""
    cluster = ws.cluster
    bundle_path = bundle_path or ws.bundle_path
    if cluster.signer == "local":
        return load_local_ca(bundle_path, key_path or ws.ca_key_path)
    certificate = _first_ca(bundle_path)
    return _external(ws, certificate, f"the first CA in {ws.relative(bundle_path)}")


def _first_ca(bundle_path: Path) -> x509.Certificate:
    return bundle.parse_bundle(files.read_bytes(bundle_path, "CA certificate"), str(bundle_path)).entries[0].certificate


def _external(ws: Any, certificate: x509.Certificate, source: str, *, dry_run: bool = False) -> Any:
    cluster = ws.cluster
    if cluster.signer == "pkcs11":
        from core.signers.token import TokenSettings, token_ca
        return token_ca(TokenSettings.of(cluster, ws.base_dir), certificate, source)
    if cluster.signer == "cfssl":
        from core.signers.cfssl import CfsslCA, CfsslSettings
        return CfsslCA(CfsslSettings.of(cluster, ws.base_dir), certificate)
    from core.signers.manual import ManualCA
    return ManualCA(certificate, dry_run=dry_run)


def rotation_ca(ws: Any, *, key_path: Path, cert_path: Path, key_label: str, key_type: str, lifetime: dt.timedelta,
                now: dt.datetime, common_name: str, dry_run: bool, current_key: Path | None = None) -> Any:
    """A rotation's new CA, made once and found again: a key file, a key inside the token, or the
    organisation's new CA certificate that `start ca --new-ca` put at `cert_path`."""
    signer = ws.cluster.signer
    if signer == "local":
        if current_key is not None and not key_path.exists() and is_encrypted(current_key):
            require_passphrase(current_key)  # an encrypted CA key is followed by an encrypted one, never a plain one
        return ensure_local_ca(key_path, cert_path, key_type=key_type, lifetime=lifetime, now=now,
                               common_name=common_name, dry_run=dry_run)
    if signer in EXTERNAL_SIGNERS:
        if not cert_path.exists():
            raise BadInput(f'With signer = "{signer}" the organisation makes the new CA: start the rotation with '
                           "`certrotate start ca --new-ca FILE` (its certificate).")
        return _external(ws, _first_ca(cert_path), f"the new CA {ws.relative(cert_path)}", dry_run=dry_run)
    from core.signers.token import TokenSettings, new_token_ca
    settings = TokenSettings.of(ws.cluster, ws.base_dir)
    existing = _first_ca(cert_path) if cert_path.exists() else None
    if dry_run and existing is None:
        from core.signers.token import session_for
        if session_for(settings).public_key_labelled(key_label) is None:
            # A dry run makes nothing inside the token: the plan is shown with a stand-in CA.
            return pki.issue_ca(key_type=key_type, lifetime=lifetime, now=now, common_name=common_name)
    ca = new_token_ca(settings, key_label, key_type=key_type, lifetime=lifetime, now=now, common_name=common_name,
                      existing=existing)
    if not dry_run and existing is None:
        files.write_public(cert_path, ca.cert_pem, overwrite=True)
    return ca


def is_encrypted(key_path: Path) -> bool:
    try:
        return b"ENCRYPTED" in key_path.read_bytes()
    except OSError:
        return False


def require_passphrase(key_path: Path) -> None:
    """The passphrase of this encrypted key is given and right (SecretNeeded otherwise)."""
    load_private_key(files.read_bytes(key_path, "CA key"), str(key_path), credentials.passphrase())


def ensure_local_ca(key_path: Path, cert_path: Path, *, key_type: str, lifetime: dt.timedelta, now: dt.datetime,
                    common_name: str, dry_run: bool = False) -> pki.Issued:
    """A CA key file at these paths: reuse a complete earlier one, finish a half-made one, or make it.

    With a passphrase in use the new key is written encrypted with it, so an encrypted CA key
    is followed by an encrypted one. With `dry_run` nothing is written.
    """
    passphrase = credentials.passphrase()
    key = None
    if key_path.exists():
        key = load_private_key(files.read_bytes(key_path, "CA key"), str(key_path), passphrase)
        if cert_path.exists():
            cert = x509.load_pem_x509_certificate(files.read_bytes(cert_path, "CA certificate"))
            if key_matches_certificate(key, cert.public_key()):
                return pki.Issued(cert, key)
    issued = pki.issue_ca(key_type=key_type, lifetime=lifetime, now=now, key=key, common_name=common_name)
    if dry_run:
        return issued
    if key is None:
        files.write_private(key_path, private_key_pem(issued.key, passphrase=passphrase), overwrite=False)
    files.write_public(cert_path, issued.cert_pem, overwrite=True)
    return issued


def probe_ca(ws: Any, key_path: Path, old_bundle: bundle.Bundle) -> Any | None:
    """The old CA, when certrotate can sign a throwaway client certificate with it (to prove trust); else None."""
    signer = ws.cluster.signer
    if signer in EXTERNAL_SIGNERS:
        return None
    if signer == "pkcs11":
        from core.signers.token import TokenCA, TokenSettings, session_for
        session = session_for(TokenSettings.of(ws.cluster, ws.base_dir))
        for entry in old_bundle.entries:
            private = session.private_key_for(entry.certificate.public_key())
            if private is not None:
                return TokenCA(session, entry.certificate, private)
        return None
    try:
        key = load_private_key(key_path.read_bytes(), str(key_path), credentials.passphrase())
    except (OSError, BadInput):
        return None
    for entry in old_bundle.entries:
        if key_matches_certificate(key, entry.certificate.public_key()):
            return pki.Issued(entry.certificate, key)
    return None


def can_probe(ca: Any) -> bool:
    """A throwaway client certificate needs a CA certrotate signs with itself (a key file or a token)."""
    return isinstance(ca, pki.Issued) or hasattr(ca, "sign_builder")


def check_start(ws: Any, kind: str, new_ca: Path | None) -> bytes | None:
    """What `start` refuses for this signer; the organisation's new CA (PEM) when one was given."""
    signer = ws.cluster.signer
    if new_ca is not None and kind != "ca":
        raise BadInput("--new-ca names the organisation's new CA; it goes with `start ca` only.")
    if kind == "init" and signer in EXTERNAL_SIGNERS:
        raise BadInput(f'`start init` cannot make a CA with signer = "{signer}": put the organisation\'s CA certificate '
                       f"at {ws.relative(ws.bundle_path)}, then run `certrotate start nodes`.")
    if kind != "ca":
        return None
    if signer == "local" and is_encrypted(ws.ca_key_path):
        require_passphrase(ws.ca_key_path)  # refused now, not after the rotation has begun
    if new_ca is None:
        if signer in EXTERNAL_SIGNERS:
            raise BadInput(f'With signer = "{signer}" the organisation makes the new CA: give its certificate with '
                           "`certrotate start ca --new-ca FILE`.")
        return None
    if signer not in EXTERNAL_SIGNERS:
        raise BadInput(f'--new-ca is for an organisation\'s CA (signer = "cfssl" or "manual"); signer = "{signer}" '
                       "makes the new CA itself.")
    pem = files.read_bytes(new_ca, "The new CA certificate")
    parsed = bundle.parse_bundle(pem, str(new_ca))
    certificate = parsed.entries[0].certificate
    if not pki.is_ca_certificate(certificate):
        raise BadInput(f"{new_ca} is not a CA certificate (no basicConstraints CA:true).")
    if certificate.not_valid_after_utc <= pki.utcnow():
        raise BadInput(f"The new CA in {new_ca} expired on {certificate.not_valid_after_utc:%Y-%m-%d}.")
    current = bundle.parse_bundle(ws.read_bundle(), ws.relative(ws.bundle_path))
    if pki.sha256_fingerprint(certificate) in current.fingerprints:
        raise BadInput(f"The CA in {new_ca} is already in {ws.relative(ws.bundle_path)}; give the organisation's "
                       "new CA, not the current one.")
    return parsed.entries[0].pem
