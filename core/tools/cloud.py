"""CockroachDB's TLS outside the cluster: a changefeed's Kafka sink, and client CAs for Cloud clusters.

`CREATE CHANGEFEED ... INTO 'kafka://broker:9093?tls_enabled=true&ca_cert=...'` takes the
sink's CA, client certificate and client key inline, each as the base64 of its PEM file
(what `base64 -w 0 file` prints), URL-quoted because standard base64 has '+', '/' and '='.
The URI therefore holds a private key by design: it is built in memory and returned,
never logged, and errors name files, never their content.
"""

from __future__ import annotations

import base64
import datetime as dt
import re
import secrets
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable
from urllib.parse import quote

from core import pki
from core.errors import BadInput
from core.files import PRIVATE_MODE, PUBLIC_MODE, FileContent, read_bytes, write_private, write_public
from core.pki.bundle import BundleEntry, join_pem, parse_bundle, parse_certificates
from core.pki.certs_dir import client_cert_name, client_key_name
from core.pki.checks import check_key_matches
from core.pki.keys import check_key_type, load_private_key
from core.remote.probes import split_address


def _inline(data: bytes) -> str:
    return quote(base64.b64encode(data).decode("ascii"), safe="")


def changefeed_uri(
    broker: str,
    *,
    ca_pem: bytes,
    cert_pem: bytes,
    key_pem: bytes,
    topic_prefix: str | None = None,
    ca_source: str = "the CA file",
    cert_source: str = "the client certificate",
    key_source: str = "the client key",
) -> str:
    """`kafka://broker?tls_enabled=true&ca_cert=..&client_cert=..&client_key=..[&topic_prefix=..]`.

    The files are checked first (certificates parse, the key is unencrypted and is the
    certificate's), so a URI that CockroachDB would reject at CREATE CHANGEFEED is never printed.
    """
    split_address(broker)  # host:port or [v6]:port, else BadInput
    parse_certificates(ca_pem, ca_source)
    certificate = parse_certificates(cert_pem, cert_source)[0].certificate
    if b"ENCRYPTED" in key_pem:
        raise BadInput(f"{key_source} is encrypted; the Kafka sink needs the key unencrypted.")
    key = load_private_key(key_pem, key_source)
    check_key_matches(certificate, key, cert_source, key_source)
    params = [
        ("tls_enabled", "true"),
        ("ca_cert", _inline(ca_pem)),
        ("client_cert", _inline(cert_pem)),
        ("client_key", _inline(key_pem)),
    ]
    if topic_prefix:
        params.append(("topic_prefix", quote(topic_prefix, safe="")))
    return f"kafka://{broker}?" + "&".join(f"{name}={value}" for name, value in params)


# -- client CAs for CockroachDB Cloud (Advanced) ------------------------------------------------
#
# A Cloud cluster accepts SQL client certificates signed by a client CA that the operator
# uploads through the Cloud API (`/api/v1/clusters/{cluster_id}/client-ca-cert`, POST to set,
# PATCH to update). The uploaded PEM may hold several CAs, which is how a client CA is rotated
# without a lock-out: upload new + old, move every client to a certificate from the new CA,
# then upload the bundle without the old one.
#
# A client-CA directory holds:
#     client-ca-bundle.crt     what to upload: every client CA still in use, newest first
#     client-ca/<fp16>.crt     each client CA, named by the first 16 hex of its SHA-256
#     client-ca/<fp16>.key     its private key (0600); never uploaded anywhere
# A new CA's files are written before the bundle that names it, so a run killed half-way
# leaves at most an unused CA beside an intact bundle.

CLIENT_CA_BUNDLE = "client-ca-bundle.crt"
CLIENT_CA_SUBDIR = "client-ca"
CLOUD_API_URL = "https://cockroachlabs.cloud/api/v1/clusters/{cluster_id}/client-ca-cert"
API_KEY_VARIABLE = "COCKROACH_API_KEY"
MIN_FINGERPRINT_PREFIX = 8
_CLUSTER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$")


@dataclass(frozen=True)
class ClientCa:
    """One client CA of the bundle, and whether its key is in the directory."""

    entry: BundleEntry
    key_path: Path | None

    @property
    def fingerprint(self) -> str:
        return self.entry.fingerprint

    @property
    def short(self) -> str:
        return self.fingerprint[:16]

    @property
    def not_after(self) -> dt.datetime:
        return self.entry.certificate.not_valid_after_utc

    @property
    def subject(self) -> str:
        return self.entry.subject

    def expired(self, now: dt.datetime) -> bool:
        return self.not_after <= now


@dataclass(frozen=True)
class ClientCaDir:
    """What a client-CA directory holds: the bundle's CAs in bundle order (newest first)."""

    directory: Path
    cas: tuple[ClientCa, ...]

    @property
    def bundle_path(self) -> Path:
        return self.directory / CLIENT_CA_BUNDLE

    @property
    def newest(self) -> ClientCa | None:
        return self.cas[0] if self.cas else None

    @property
    def bundle_pem(self) -> bytes:
        return join_pem([ca.entry.pem for ca in self.cas])


@dataclass(frozen=True)
class ClientCaChange:
    """Files to write (in order), files to delete afterwards, and the directory as it will be."""

    writes: tuple[FileContent, ...]
    deletes: tuple[Path, ...]
    after: ClientCaDir
    created: ClientCa | None = None
    dropped: tuple[ClientCa, ...] = ()


def ca_file_stem(fingerprint: str) -> str:
    return fingerprint[:16]


def read_client_ca_dir(directory: Path) -> ClientCaDir:
    """The directory's bundle (none yet: an empty ClientCaDir); every entry must be a CA."""
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise BadInput(f"{directory} is a file, not a directory.")
    path = directory / CLIENT_CA_BUNDLE
    if not path.exists():
        leftovers = sorted((directory / CLIENT_CA_SUBDIR).glob("*.crt")) if directory.is_dir() else []
        if leftovers:
            raise BadInput(
                f"{directory} has client CAs in {CLIENT_CA_SUBDIR}/ but no {CLIENT_CA_BUNDLE}; restore the bundle "
                "from your backup (or from what the Cloud API returns) before creating another client CA."
            )
        return ClientCaDir(directory, ())
    entries = parse_bundle(read_bytes(path, "Client CA bundle"), str(path)).entries
    cas = []
    for entry in entries:
        key_path = directory / CLIENT_CA_SUBDIR / f"{ca_file_stem(entry.fingerprint)}.key"
        cas.append(ClientCa(entry, key_path if key_path.exists() else None))
    return ClientCaDir(directory, tuple(cas))


def new_client_ca(current: ClientCaDir, *, key_type: str, lifetime: dt.timedelta, now: dt.datetime) -> ClientCaChange:
    """A new client CA in front of the bundle; the old CAs still valid stay behind it, expired ones go."""
    check_key_type(key_type)
    name = f"Cockroach client CA {now:%Y-%m-%d %H:%M:%S} {secrets.token_hex(3)}"  # unique subject per CA
    issued = pki.issue_ca(key_type=key_type, lifetime=lifetime, now=now, common_name=name, client_ca=True)
    stem = ca_file_stem(issued.fingerprint)
    cert_rel, key_rel = f"{CLIENT_CA_SUBDIR}/{stem}.crt", f"{CLIENT_CA_SUBDIR}/{stem}.key"
    created = ClientCa(parse_bundle(issued.cert_pem, "the new client CA").entries[0], current.directory / key_rel)
    kept = [ca for ca in current.cas if not ca.expired(now)]
    dropped = tuple(ca for ca in current.cas if ca.expired(now))
    after = ClientCaDir(current.directory, (created, *kept))
    writes = (
        FileContent(key_rel, issued.key_pem(), PRIVATE_MODE),
        FileContent(cert_rel, issued.cert_pem, PUBLIC_MODE),
        FileContent(CLIENT_CA_BUNDLE, after.bundle_pem, PUBLIC_MODE),
    )
    return ClientCaChange(writes, _key_files(dropped), after, created=created, dropped=dropped)


def _key_files(cas: Iterable[ClientCa]) -> tuple[Path, ...]:
    """A CA that left the bundle must never sign again: its key goes (its certificate stays for the record)."""
    return tuple(ca.key_path for ca in cas if ca.key_path is not None)


def _normalised_fingerprint(text: str) -> str:
    cleaned = text.strip().lower().replace(":", "")
    if len(cleaned) < MIN_FINGERPRINT_PREFIX or any(c not in "0123456789abcdef" for c in cleaned):
        raise BadInput(
            f"--retire {text!r} is not a SHA-256 fingerprint (at least {MIN_FINGERPRINT_PREFIX} hex digits, "
            "as `cloud client-ca` lists them)."
        )
    return cleaned


def retire_client_ca(current: ClientCaDir, fingerprint: str) -> ClientCaChange:
    """The bundle without the CA whose fingerprint starts with `fingerprint`; never the newest one."""
    wanted = _normalised_fingerprint(fingerprint)
    if not current.cas:
        raise BadInput(f"{current.bundle_path} does not exist; there is no client CA to retire.")
    matches = [ca for ca in current.cas if ca.fingerprint.startswith(wanted)]
    listed = ", ".join(ca.short for ca in current.cas)
    if not matches:
        raise BadInput(f"No client CA in {current.bundle_path} has a fingerprint starting with {wanted}; it holds {listed}.")
    if len(matches) > 1:
        raise BadInput(f"{wanted} matches {len(matches)} client CAs in {current.bundle_path}; give more hex digits.")
    retired = matches[0]
    if retired is current.newest:
        raise BadInput(
            f"{retired.short} is the newest client CA, the one that signs client certificates; create a new one "
            f"first (certrotate cloud client-ca --dir {current.directory}) and retire this one after the transition."
        )
    return _without(current, (retired,))


def drop_expired_client_cas(current: ClientCaDir, now: dt.datetime) -> ClientCaChange:
    """The bundle without its expired CAs (an expired newest CA means: create a new one)."""
    newest = current.newest
    if newest is None:
        raise BadInput(f"{current.bundle_path} does not exist; there is no client CA to drop.")
    if newest.expired(now):
        raise BadInput(
            f"The newest client CA {newest.short} expired on {newest.not_after:%Y-%m-%d}; create a new one with "
            f"certrotate cloud client-ca --dir {current.directory}."
        )
    return _without(current, tuple(ca for ca in current.cas if ca.expired(now)))


def _without(current: ClientCaDir, gone: tuple[ClientCa, ...]) -> ClientCaChange:
    after = ClientCaDir(current.directory, tuple(ca for ca in current.cas if ca not in gone))
    writes = (FileContent(CLIENT_CA_BUNDLE, after.bundle_pem, PUBLIC_MODE),) if gone else ()
    return ClientCaChange(writes, _key_files(gone), after, dropped=gone)


def signing_client_ca(current: ClientCaDir) -> pki.Issued:
    """The newest client CA with its key, checked to belong together."""
    newest = current.newest
    if newest is None:
        raise BadInput(
            f"{current.bundle_path} does not exist; create a client CA first "
            f"(certrotate cloud client-ca --dir {current.directory})."
        )
    if newest.key_path is None:
        expected = current.directory / CLIENT_CA_SUBDIR / f"{newest.short}.key"
        raise BadInput(f"The newest client CA's key {expected} is missing; it cannot sign client certificates.")
    key = load_private_key(read_bytes(newest.key_path, "Client CA key"), str(newest.key_path))
    check_key_matches(newest.entry.certificate, key, f"client CA {newest.short}", str(newest.key_path))
    return pki.Issued(newest.entry.certificate, key)


def new_client_cert(ca: pki.Issued, user: str, *, key_type: str, lifetime: dt.timedelta,
                    now: dt.datetime) -> tuple[FileContent, ...]:
    """client.<user>.key (0600) then client.<user>.crt, signed by `ca`."""
    check_key_type(key_type)
    issued = pki.issue_client(ca, user, key_type=key_type, lifetime=lifetime, now=now)
    return (
        FileContent(client_key_name(user), issued.key_pem(), PRIVATE_MODE),
        FileContent(client_cert_name(user), issued.cert_pem, PUBLIC_MODE),
    )


def check_cluster_id(cluster_id: str) -> str:
    if not _CLUSTER_ID.match(cluster_id):
        raise BadInput(
            f"--cluster-id {cluster_id!r} is not a CockroachDB Cloud cluster ID (letters, digits, '-' and '_', "
            "as in the Cloud Console's URL or `ccloud cluster list`)."
        )
    return cluster_id


def upload_command(bundle_path: Path, cluster_id: str | None, *, first_time: bool) -> str:
    """The shell command that sends the bundle to the Cloud API; the API key stays in the environment.

    jq reads the PEM file and JSON-escapes it, so no certificate is pasted by hand; curl reads
    the body from stdin (`--data @-`).
    """
    url = CLOUD_API_URL.format(cluster_id=check_cluster_id(cluster_id) if cluster_id else "{cluster_id}")
    method = "POST" if first_time else "PATCH"
    return (
        f"jq -n --rawfile pem {shlex.quote(str(bundle_path))} '{{x509_pem_cert: $pem}}' \\\n"
        f"  | curl --request {method} --url {shlex.quote(url)} \\\n"
        f"      --header \"Authorization: Bearer ${API_KEY_VARIABLE}\" \\\n"
        f"      --header 'Content-Type: application/json' --data @-"
    )


def save_change(directory: Path, writes: Iterable[FileContent], deletes: Iterable[Path] = (), *,
                overwrite: bool = False) -> list[Path]:
    """Write the files in order (keys 0600 from creation), then delete what the change retired.

    Every target is checked before the first write, so a refusal leaves nothing half-written
    (a new key without its certificate); directories that receive a key are made 0700.
    """
    writes = list(writes)
    if not overwrite:
        for planned in writes:
            path = Path(directory) / planned.path
            if planned.path != CLIENT_CA_BUNDLE and path.exists():
                raise BadInput(f"{path} already exists; pass --overwrite to replace it.")
    for planned in writes:
        if planned.mode & 0o077 == 0:
            parent = (Path(directory) / planned.path).parent
            try:
                parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            except OSError as exc:
                raise BadInput(f"Cannot create directory {parent}: {exc.strerror}.") from None
    written = []
    for planned in writes:
        path = Path(directory) / planned.path
        replace = overwrite or planned.path == CLIENT_CA_BUNDLE
        if planned.mode & 0o077 == 0:
            write_private(path, planned.content, overwrite=replace)
        else:
            write_public(path, planned.content, overwrite=replace)
        written.append(path)
    for path in deletes:
        path.unlink(missing_ok=True)
    return written
