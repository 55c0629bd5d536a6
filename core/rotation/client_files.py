"""Which files a client gets: the formats its inventory asks for, and every key-bearing file it already has.

A client whose certs dir (or export dir) already holds client.<user>.key.pk8 or
client.<user>.p12 — written by `cockroach cert create-client --also-generate-pkcs8-key`
or by hand — gets it refreshed with the new certificate even when its `formats` do not
name it, and the run says so: a stale .pk8 beside a new .crt is exactly how a Java client
ends up presenting a new certificate with the old key. The PKCS#12 password is read from
the operator's `p12_password_file` when the files are built and goes nowhere else.
"""

from __future__ import annotations

import posixpath

from core import files
from core.config.inventory import ClientConfig, resolve_local
from core.config.record import client_key
from core.errors import BadInput, StepFailed
from core.pki import client_formats
from core.pki.client_formats import CA_TRUSTSTORE, ClientIdentity
from core.remote import remote_files
from core.rotation.context import Run
from core.rotation.model import Progress


def _present(run: Run, client: ClientConfig, names: list[str]) -> set[str]:
    """Which of `names` the client already has (over SSH: one stat each; else in its export dir)."""
    if client.delivered_over_ssh:
        session = run.session(client)
        base = (client.certs_dir or "").rstrip("/")
        return {name for name in names if remote_files.stat(session, posixpath.join(base, name)) is not None}
    export = run.ws.export_dir(client.user)
    return {name for name in names if (export / name).exists()}


def formats_for(run: Run, client: ClientConfig, step: str) -> set[str]:
    """The client's formats plus those it already holds files of (announced), so none keeps an old key."""
    wanted = set(client.formats)
    by_format = client_formats.key_files(client.user)
    extra = {fmt: name for fmt, name in by_format.items() if fmt not in wanted}
    found = _present(run, client, list(extra.values())) if extra else set()
    for fmt, name in extra.items():
        if name in found:
            run.report(Progress(client_key(client), step, "running",
                                f"{name} is there too: refreshing it with the new certificate"))
            wanted.add(fmt)
    return wanted


def p12_password(run: Run, client: ClientConfig, formats: set[str]) -> bytes | None:
    """The PKCS#12 password from the operator's file (trailing newline dropped), when a .p12 is to be built."""
    if "p12" not in formats:
        return None
    where = f"{client.certs_dir}" if client.delivered_over_ssh else run.ws.relative(run.ws.export_dir(client.user))
    if client.p12_password_file is None:
        raise StepFailed(
            f"client {client_key(client)} already has {client_formats.p12_name(client.user)} (or {CA_TRUSTSTORE}) in "
            f"{where}, which must get the new certificate and key, but its [[clients]] entry names no "
            f'p12_password_file; add formats = ["pem", "p12"] and p12_password_file, or remove the file.'
        )
    path = resolve_local(client.p12_password_file, run.state.base_dir)
    try:
        password = files.read_bytes(path, f"The PKCS#12 password file of client {client_key(client)}")
    except BadInput as error:  # one sentence naming the file, never its content
        raise StepFailed(f"{error} Create it holding the keystore password (p12_password_file).") from None
    password = password.rstrip(b"\r\n")
    if not password:
        raise StepFailed(f"The PKCS#12 password file {run.ws.relative(path)} of client {client_key(client)} is empty; "
                         "put the keystore password in it.")
    return password


def leaf_payload(run: Run, client: ClientConfig, cert_pem: bytes, key_pem: bytes,
                 ca_bundle: bytes | None) -> dict[str, tuple[bytes, int]]:
    """The new certificate in every form the client needs, keys first; ca.crt (and ca.p12) when given or p12."""
    formats = formats_for(run, client, "leaf")
    if ca_bundle is None and "p12" in formats:
        ca_bundle = run.ws.read_bundle()  # the keystore's chain and the truststore: the bundle the nodes serve from
    identity = ClientIdentity(client.user, cert_pem, key_pem, ca_bundle)
    return client_formats.client_files(identity, formats, p12_password(run, client, formats))


def bundle_payload(run: Run, client: ClientConfig, step: str, bundle_pem: bytes) -> dict[str, tuple[bytes, int]]:
    """The CA bundle in the forms the client has: ca.crt, and the ca.p12 truststore for PKCS#12 clients."""
    formats = {"p12"} if "p12" in client.formats else set()
    if not formats and CA_TRUSTSTORE in _present(run, client, [CA_TRUSTSTORE]):
        run.report(Progress(client_key(client), step, "running", f"{CA_TRUSTSTORE} is there too: refreshing it"))
        formats = {"p12"}
    return client_formats.bundle_files(bundle_pem, formats, p12_password(run, client, formats))
