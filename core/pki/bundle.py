"""CA bundles (ca.crt): parse, combine, remove, all without touching the bytes of kept entries.

A rotation edits the trust bundle twice — the new CA goes in front, later the old one
goes away — and operators diff these files. So every entry keeps its exact PEM bytes,
and anything that is not a CA certificate is refused rather than carried along.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from cryptography import x509

from core.errors import BadInput
from core.pki.builder import is_ca_certificate, sha256_fingerprint

_PEM_BLOCK = re.compile(
    rb"-----BEGIN (?P<label>[A-Z0-9 ]+)-----\r?\n.*?-----END (?P=label)-----\r?\n?", re.DOTALL
)


@dataclass(frozen=True)
class BundleEntry:
    pem: bytes
    certificate: x509.Certificate

    @property
    def fingerprint(self) -> str:
        return sha256_fingerprint(self.certificate)

    @property
    def subject(self) -> str:
        return self.certificate.subject.rfc4514_string()


@dataclass(frozen=True)
class Bundle:
    entries: tuple[BundleEntry, ...]

    @property
    def pem(self) -> bytes:
        return join_pem([entry.pem for entry in self.entries])

    @property
    def certificates(self) -> list[x509.Certificate]:
        return [entry.certificate for entry in self.entries]

    @property
    def fingerprints(self) -> list[str]:
        return [entry.fingerprint for entry in self.entries]

    def expired(self, now: dt.datetime) -> list[BundleEntry]:
        return [entry for entry in self.entries if entry.certificate.not_valid_after_utc <= now]


def split_pem(data: bytes, source: str) -> list[tuple[str, bytes]]:
    """Every PEM block as (label, exact bytes); refuses text that only looks like PEM."""
    blocks = [(m.group("label").decode(), m.group(0)) for m in _PEM_BLOCK.finditer(data)]
    leftover = _PEM_BLOCK.sub(b"", data)
    if b"-----BEGIN" in leftover or b"-----END" in leftover:
        raise BadInput(f"{source} holds a truncated or malformed PEM block.")
    if not blocks:
        raise BadInput(f"{source} holds no PEM certificate.")
    return blocks


def join_pem(blocks: list[bytes]) -> bytes:
    return b"".join(block if block.endswith(b"\n") else block + b"\n" for block in blocks)


def parse_certificates(data: bytes, source: str) -> list[BundleEntry]:
    """All certificates in a PEM file, leaf or CA; refuses keys and unparsable blocks."""
    entries = []
    for index, (label, block) in enumerate(split_pem(data, source), start=1):
        if label != "CERTIFICATE":
            raise BadInput(f"{source} entry {index} is a {label}, not a certificate.")
        try:
            certificate = x509.load_pem_x509_certificate(block)
            # cryptography parses the subject and extensions lazily, and a damaged one raises
            # ValueError, InvalidVersion, DuplicateExtension or even KeyError (unknown string
            # tag) — later, mid-rotation, as a traceback. Touch them here, where any failure
            # of the parser on these bytes means the same thing: not a parsable certificate.
            certificate.extensions  # noqa: B018
            certificate.subject.rfc4514_string()
            certificate.issuer.rfc4514_string()
        except Exception:
            raise BadInput(f"{source} entry {index} is not a parsable certificate.") from None
        entries.append(BundleEntry(block, certificate))
    return entries


def parse_bundle(data: bytes, source: str) -> Bundle:
    """A trust bundle: CA certificates only."""
    entries = parse_certificates(data, source)
    for index, entry in enumerate(entries, start=1):
        if not is_ca_certificate(entry.certificate):
            raise BadInput(f"{source} entry {index} ({entry.subject}) is not a CA certificate.")
    return Bundle(tuple(entries))


def combine(new_ca_pem: bytes, existing: bytes | None, source: str = "ca.crt") -> bytes:
    """New CA first, then the existing CAs with their bytes untouched (no duplicate of the new one)."""
    new_entries = parse_bundle(new_ca_pem, "the new CA").entries
    if existing is None or not existing.strip():
        return join_pem([e.pem for e in new_entries])
    old = parse_bundle(existing, source)
    new_prints = {e.fingerprint for e in new_entries}
    kept = [e.pem for e in old.entries if e.fingerprint not in new_prints]
    return join_pem([e.pem for e in new_entries] + kept)


def remove(bundle_pem: bytes, fingerprints: set[str], source: str = "ca.crt") -> bytes:
    """The bundle without the given CAs; refuses to leave it empty."""
    bundle = parse_bundle(bundle_pem, source)
    kept = [e.pem for e in bundle.entries if e.fingerprint not in fingerprints]
    if not kept:
        raise BadInput(f"Removing those CAs would leave {source} empty; the cluster would trust nothing.")
    return join_pem(kept)
