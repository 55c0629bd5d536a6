"""The `pkcs11` signer: the CA key lives in an HSM or token and never leaves it.

The inventory names the PKCS#11 module (the vendor's .so), the token label and the key
label of the first CA; the PIN comes from `core.signers.credentials` (the wizard's prompt,
CERTROTATE_PKCS11_PIN, --pkcs11-pin-file) or `[cluster] pkcs11_pin_file`. The token's key
for a CA is found by its public key, so after a CA rotation (whose new key is made inside
the token, labelled `<key label>-<rotation id>`) nothing in the inventory needs to change.

A certificate is built with certrotate's own profile and signed inside the token
(core.signers.resign); the session is kept open for the process and used under a lock,
because a PKCS#11 session is not safe to share between threads.
"""

from __future__ import annotations

import atexit
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from core import pki
from core.errors import BadInput, SecretNeeded, StepFailed
from core.pki.keys import KEY_TYPES, PublicKey, check_key_type
from core.signers import credentials
from core.signers.paths import resolve_local
from core.signers.request import CaObject
from core.signers.resign import family_of, sign_builder_with

_sessions: dict[tuple[str, str], "TokenSession"] = {}
_sessions_lock = threading.Lock()


@dataclass(frozen=True)
class TokenSettings:
    module: str
    token: str
    key_label: str
    pin_file: Path | None

    @classmethod
    def of(cls, cluster: Any, base_dir: Path) -> "TokenSettings":
        if not (cluster.pkcs11_module and cluster.pkcs11_token and cluster.pkcs11_key_label):
            raise BadInput('signer = "pkcs11" needs [cluster] pkcs11_module, pkcs11_token and pkcs11_key_label.')
        pin_file = resolve_local(cluster.pkcs11_pin_file, base_dir) if cluster.pkcs11_pin_file else None
        return cls(cluster.pkcs11_module, cluster.pkcs11_token, cluster.pkcs11_key_label, pin_file)


class TokenSession:
    """One logged-in session on the token, shared by every CA object of this process."""

    def __init__(self, settings: TokenSettings):
        import pkcs11
        from pkcs11 import exceptions as p11

        self.settings = settings
        self.lock = threading.RLock()
        try:
            library = pkcs11.lib(settings.module)
        except (RuntimeError, OSError) as error:
            raise BadInput(f"The PKCS#11 module {settings.module} cannot be loaded ({_short(error)}); "
                           "check [cluster] pkcs11_module.") from None
        try:
            token = library.get_token(token_label=settings.token)
        except p11.NoSuchToken:
            raise BadInput(f"The PKCS#11 module {settings.module} has no token labelled {settings.token!r}; "
                           "check [cluster] pkcs11_token.") from None
        except p11.PKCS11Error as error:
            raise BadInput(f"The token {settings.token!r} cannot be used ({_short(error)}).") from None
        pin = _pin(settings)
        try:
            self.session = token.open(rw=True, user_pin=pin.decode())
        except (p11.PinIncorrect, p11.PinInvalid, p11.PinLenRange):
            credentials.forget(credentials.PIN)
            raise SecretNeeded(f"The PIN for token {settings.token!r} is wrong.", secret=credentials.PIN,
                               source=settings.token, wrong=True) from None
        except p11.PKCS11Error as error:
            raise BadInput(f"Logging in to token {settings.token!r} failed ({_short(error)}).") from None

    def close(self) -> None:
        with self.lock:
            try:
                self.session.close()
            except Exception:  # noqa: BLE001 - the process is ending; the token closes the session anyway
                pass

    # -- keys -----------------------------------------------------------------------------

    def private_key_for(self, public_key: PublicKey) -> Any | None:
        """The token's private key whose public half is `public_key`, or None."""
        from pkcs11 import Attribute, ObjectClass

        wanted = _spki(public_key)
        with self.lock:
            # One object search at a time: PKCS#11 refuses a second while the first is open.
            publics = list(self.session.get_objects({Attribute.CLASS: ObjectClass.PUBLIC_KEY}))
            for public in publics:
                if _token_spki(public) != wanted:
                    continue
                privates = list(self.session.get_objects({Attribute.CLASS: ObjectClass.PRIVATE_KEY,
                                                          Attribute.ID: public[Attribute.ID]}))
                if privates:
                    return privates[0]
        return None

    def public_key_labelled(self, label: str) -> PublicKey | None:
        from pkcs11 import Attribute, ObjectClass

        with self.lock:
            publics = list(self.session.get_objects({Attribute.CLASS: ObjectClass.PUBLIC_KEY, Attribute.LABEL: label}))
            if publics:
                return serialization.load_der_public_key(_token_spki(publics[0]))  # type: ignore[return-value]
        return None

    def generate(self, label: str, key_type: str) -> PublicKey:
        """A new key pair inside the token (the private half never extractable); its public half."""
        from pkcs11 import Attribute, KeyType
        from pkcs11.util.ec import encode_named_curve_parameters

        family, param = KEY_TYPES[check_key_type(key_type)]
        key_id = label.encode()
        template = {Attribute.EXTRACTABLE: False, Attribute.SENSITIVE: True, Attribute.SIGN: True}
        with self.lock:
            if family == "rsa":
                public, _ = self.session.generate_keypair(KeyType.RSA, int(param), id=key_id, label=label, store=True,
                                                          private_template=template)
            else:
                params = self.session.create_domain_parameters(
                    KeyType.EC, {Attribute.EC_PARAMS: encode_named_curve_parameters(param.name)}, local=True)
                public, _ = params.generate_keypair(id=key_id, label=label, store=True, private_template=template)
            return serialization.load_der_public_key(_token_spki(public))  # type: ignore[return-value]

    def sign(self, private: Any, tbs: bytes, family: str) -> bytes:
        from pkcs11 import Mechanism
        from pkcs11.util.ec import encode_ecdsa_signature

        with self.lock:
            if family == "rsa":
                return private.sign(tbs, mechanism=Mechanism.SHA256_RSA_PKCS)
            digest = hashes.Hash(hashes.SHA256())
            digest.update(tbs)
            # Plain ECDSA over our own SHA-256 digest: every token has it, not all have ECDSA_SHA256.
            return encode_ecdsa_signature(private.sign(digest.finalize(), mechanism=Mechanism.ECDSA))


def session_for(settings: TokenSettings) -> TokenSession:
    key = (settings.module, settings.token)
    with _sessions_lock:
        if key not in _sessions:
            _sessions[key] = TokenSession(settings)
        return _sessions[key]


@atexit.register
def _close_sessions() -> None:
    with _sessions_lock:
        for session in _sessions.values():
            session.close()
        _sessions.clear()


class TokenCA(CaObject):
    """A CA whose key is in the token: signs builders (leaves, throwaway probe certificates) there."""

    name = "pkcs11"

    def __init__(self, session: TokenSession, certificate: x509.Certificate, private: Any):
        self.session = session
        self.certificate = certificate
        self._private = private

    def __repr__(self) -> str:
        return f"TokenCA({self.session.settings.token!r}, {self.fingerprint[:16]}…)"

    def sign_builder(self, builder: x509.CertificateBuilder) -> x509.Certificate:
        public = self.certificate.public_key()
        family = family_of(public)  # type: ignore[arg-type]
        return sign_builder_with(builder, public, lambda tbs: self.session.sign(self._private, tbs, family),  # type: ignore[arg-type]
                                 source=f"token {self.session.settings.token!r}")


def token_ca(settings: TokenSettings, certificate: x509.Certificate, source: str) -> TokenCA:
    """The CA `certificate` with its key in the token; refused when the token has no such key."""
    session = session_for(settings)
    private = session.private_key_for(certificate.public_key())  # type: ignore[arg-type]
    if private is None:
        raise BadInput(f"Token {settings.token!r} holds no key for {source} ({pki.common_name(certificate)}); "
                       "check [cluster] pkcs11_token, or that this is the token the CA was made in.")
    return TokenCA(session, certificate, private)


def new_token_ca(settings: TokenSettings, label: str, *, key_type: str, lifetime, now, common_name: str,
                 existing: x509.Certificate | None) -> TokenCA:
    """A CA whose key is made inside the token (or found there again, labelled `label`)."""
    session = session_for(settings)
    public = session.public_key_labelled(label)
    if existing is not None and public is not None and _spki(existing.public_key()) == _spki(public):  # type: ignore[arg-type]
        return token_ca(settings, existing, f"the CA {common_name}")
    if public is None:
        public = session.generate(label, key_type)
    private = session.private_key_for(public)
    if private is None:
        raise StepFailed(f"Token {settings.token!r} made key {label!r} but cannot find its private half.")
    family = family_of(public)
    certificate = pki.build_certificate(
        pki.CA_PROFILE, common_name=common_name, key=public, lifetime=lifetime, now=now,
        self_signer=lambda builder: sign_builder_with(builder, public, lambda tbs: session.sign(private, tbs, family),
                                                      source=f"token {settings.token!r}"))
    return TokenCA(session, certificate, private)


def _pin(settings: TokenSettings) -> bytes:
    pin = credentials.pin()
    if pin is None and settings.pin_file is not None:
        credentials.give_from_file(credentials.PIN, settings.pin_file)
        pin = credentials.pin()
    if pin is None:
        raise SecretNeeded(f"Token {settings.token!r} needs its PIN (CERTROTATE_PKCS11_PIN, --pkcs11-pin-file FILE, "
                           "[cluster] pkcs11_pin_file, or the wizard's prompt).", secret=credentials.PIN,
                           source=settings.token)
    return pin


def _spki(public_key: PublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _token_spki(public: Any) -> bytes:
    """The token's public key object as SubjectPublicKeyInfo DER, as cryptography writes it."""
    from asn1crypto.keys import PublicKeyInfo, RSAPublicKey
    from pkcs11 import KeyType
    from pkcs11.util.ec import encode_ec_public_key
    from pkcs11.util.rsa import encode_rsa_public_key

    if public.key_type == KeyType.RSA:
        info = PublicKeyInfo({"algorithm": {"algorithm": "rsa"}, "public_key": RSAPublicKey.load(encode_rsa_public_key(public))})
        return serialization.load_der_public_key(info.dump()).public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return serialization.load_der_public_key(encode_ec_public_key(public)).public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _short(error: BaseException) -> str:
    return type(error).__name__ + (f": {error}" if str(error) else "")
