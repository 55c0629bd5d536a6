"""Look at a node over the network: which certificate it serves, and which CA it trusts.

Proof of a reload is what the node serves afterwards, never the reload command's exit
code: `pkill -HUP` succeeds even when the node then refuses the new files and keeps the
old ones. Both probes therefore talk TLS to the node the way a client would.

- The SQL ports of PostgreSQL and CockroachDB start in plain text: the client sends an
  SSLRequest (int32 length 8, int32 80877103), the server answers one byte, 'S', and the
  TLS handshake follows on the same connection. The DB Console (`http_addr`) speaks TLS
  directly.
- The served-certificate probe does not verify the server: the point is to see what is
  served, including an expired or untrusted certificate.
- On Python 3.11 `ssl` hands out only the leaf; the rest of the served chain is read
  from the server's Certificate handshake message through OpenSSL's message callback
  (`SSLContext._msg_callback`, a CPython debugging hook). Where that hook is missing the
  chain is just the leaf, and `chain_is_complete` says so.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import shutil
import socket
import ssl
import struct
import tempfile
import time
from dataclasses import dataclass

from cryptography import x509

from core.config.inventory import split_address
from core.errors import BadInput, CertRotateError
from core.pki import Issued, issue_client, san_strings, sha256_fingerprint

SSL_REQUEST = struct.pack("!ii", 8, 80877103)
PROTOCOL_3_0 = 196608
PROBE_USER = "certrotate-probe"
DEFAULT_TIMEOUT = 5.0

_HANDSHAKE = 22
_ALERT = 21
_CERTIFICATE = 11
_CERTIFICATE_REQUEST = 13
_NEW_SESSION_TICKET = 4
# Alerts a server sends when it refuses the client's certificate (RFC 8446 §6.2).
_CERTIFICATE_ALERTS = {
    42: "bad certificate",
    43: "unsupported certificate",
    44: "certificate revoked",
    45: "certificate expired",
    46: "certificate unknown",
    48: "unknown CA",
    49: "access denied",
    116: "certificate required",
}
_CERTIFICATE_ALERT_REASONS = (
    "ALERT_BAD_CERTIFICATE",
    "ALERT_UNSUPPORTED_CERTIFICATE",
    "ALERT_CERTIFICATE_REVOKED",
    "ALERT_CERTIFICATE_EXPIRED",
    "ALERT_CERTIFICATE_UNKNOWN",
    "ALERT_UNKNOWN_CA",
    "ALERT_ACCESS_DENIED",
    "ALERT_CERTIFICATE_REQUIRED",
)


@dataclass(frozen=True)
class ServedCertificate:
    """What a node presented in a TLS handshake, leaf first."""

    address: str
    chain: tuple[x509.Certificate, ...]
    tls_version: str
    chain_is_complete: bool = True  # False: only the leaf could be read

    @property
    def leaf(self) -> x509.Certificate:
        return self.chain[0]

    @property
    def fingerprint(self) -> str:
        return sha256_fingerprint(self.leaf)

    @property
    def not_after(self) -> dt.datetime:
        return self.leaf.not_valid_after_utc

    @property
    def subject(self) -> str:
        return self.leaf.subject.rfc4514_string()

    @property
    def sans(self) -> list[str]:
        return san_strings(self.leaf)


@dataclass(frozen=True)
class TrustResult:
    """Whether `address` accepted a client certificate signed by a given CA."""

    trusted: bool
    detail: str
    address: str = ""


class _Attempt:
    """One probe of one address: its time budget, handed out operation by operation,
    and the stage it has reached, so a failure can say where it happened."""

    def __init__(self, address: str, timeout: float) -> None:
        self.address = address
        self.timeout = timeout
        self.end = time.monotonic() + timeout
        self.stage = "while connecting"

    def left(self, at_most: float | None = None) -> float:
        left = self.end - time.monotonic()
        if left <= 0:
            raise TimeoutError
        return min(left, at_most) if at_most is not None else left

    def apply(self, sock: socket.socket) -> None:
        sock.settimeout(self.left())

    def failure(self, exc: BaseException) -> CertRotateError:
        """One sentence for a network or TLS failure; never the probe's key material."""
        address, stage = self.address, self.stage
        if isinstance(exc, CertRotateError):
            return exc
        if isinstance(exc, TimeoutError):
            return CertRotateError(f"{address} did not answer within {self.timeout:g} s ({stage}).")
        if isinstance(exc, ConnectionRefusedError):
            return CertRotateError(
                f"Connection to {address} was refused: nothing listens there; "
                "check that the node runs and that the address is right."
            )
        if isinstance(exc, socket.gaierror):
            return CertRotateError(f"Cannot resolve the host of {address}: {exc.strerror}.")
        if isinstance(exc, ssl.SSLError):
            return CertRotateError(f"TLS with {address} failed {stage}: {_ssl_reason(exc)}.")
        if isinstance(exc, (ConnectionResetError, BrokenPipeError, EOFError)):
            return CertRotateError(f"{address} closed the connection {stage}.")
        if isinstance(exc, OSError):
            return CertRotateError(f"Cannot talk to {address} ({stage}): {exc.strerror or exc}.")
        return CertRotateError(f"Probing {address} failed {stage}: {type(exc).__name__}.")


@dataclass
class _Transcript:
    """TLS handshake messages and alerts seen by OpenSSL's message callback."""

    server_certificate_message: bytes | None = None
    tls13: bool = False
    certificate_requested: bool = False
    session_ticket_seen: bool = False
    alert_received: int | None = None
    hooked: bool = False

    def __call__(self, conn, direction, version, content_type, msg_type, data) -> None:
        try:
            if content_type == _HANDSHAKE and data:
                kind = data[0]
                if direction == "read" and kind == _CERTIFICATE and self.server_certificate_message is None:
                    self.server_certificate_message = bytes(data)
                    self.tls13 = version == ssl.TLSVersion.TLSv1_3
                elif direction == "read" and kind == _CERTIFICATE_REQUEST:
                    self.certificate_requested = True
                elif direction == "read" and kind == _NEW_SESSION_TICKET:
                    self.session_ticket_seen = True
            elif content_type == _ALERT and direction == "read" and len(data) >= 2:
                self.alert_received = data[1]
        except Exception:  # noqa: BLE001 - a debugging hook must never break the handshake
            pass


def _chain_from_certificate_message(message: bytes, tls13: bool) -> list[x509.Certificate]:
    """Parse a TLS Certificate handshake message (RFC 5246 §7.4.2, RFC 8446 §4.4.2)."""
    body = message[4:]
    pos = 0
    if tls13:
        pos = 1 + body[0]  # certificate_request_context
    total = int.from_bytes(body[pos : pos + 3], "big")
    pos += 3
    end = pos + total
    chain = []
    while pos < end:
        length = int.from_bytes(body[pos : pos + 3], "big")
        pos += 3
        chain.append(x509.load_der_x509_certificate(body[pos : pos + length]))
        pos += length
        if tls13:
            pos += 2 + int.from_bytes(body[pos : pos + 2], "big")  # per-certificate extensions
    return chain


def _client_context(transcript: _Transcript) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    if hasattr(context, "_msg_callback"):
        context._msg_callback = transcript  # type: ignore[attr-defined]
        transcript.hooked = True
    return context


@contextlib.contextmanager
def _private_dir():
    directory = tempfile.mkdtemp(prefix="certrotate-probe-")  # 0700
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _load_client_certificate(context: ssl.SSLContext, client: Issued) -> None:
    """`load_cert_chain` reads only files: write them 0600 in a 0700 directory, load, delete."""
    with _private_dir() as directory:
        cert_path = os.path.join(directory, "probe.crt")
        key_path = os.path.join(directory, "probe.key")
        for path, data in ((cert_path, client.cert_pem), (key_path, client.key_pem(pkcs8=True))):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
        try:
            context.load_cert_chain(cert_path, key_path)
        except (ssl.SSLError, OSError):
            raise CertRotateError("Cannot load the throwaway probe client certificate into TLS.") from None


def _recv_exact(sock: socket.socket, count: int, attempt: _Attempt) -> bytes:
    data = b""
    while len(data) < count:
        attempt.apply(sock)
        chunk = sock.recv(count - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return data


def _send_ssl_request(sock: socket.socket, attempt: _Attempt) -> None:
    attempt.stage = "waiting for the answer to the SSLRequest"
    attempt.apply(sock)
    sock.sendall(SSL_REQUEST)
    try:
        answer = _recv_exact(sock, 1, attempt)
    except (EOFError, ConnectionResetError):
        raise CertRotateError(
            f"{attempt.address} closed the connection without answering the SSLRequest; "
            "is it a PostgreSQL or CockroachDB SQL port?"
        ) from None
    if answer != b"S":
        said = "'N' (TLS is off)" if answer == b"N" else f"{answer!r} instead of 'S'"
        raise CertRotateError(
            f"The node does not offer TLS on {attempt.address}: it answered {said} to the SSLRequest."
        )


def _handshake(attempt: _Attempt, context: ssl.SSLContext, postgres_preamble: bool) -> ssl.SSLSocket:
    host, port = split_address(attempt.address)
    attempt.stage = "while connecting"
    sock = socket.create_connection((host, port), timeout=attempt.left())
    try:
        if postgres_preamble:
            _send_ssl_request(sock, attempt)
        attempt.stage = "during the TLS handshake"
        attempt.apply(sock)
        tls = context.wrap_socket(sock, server_hostname=host, do_handshake_on_connect=False)
    except BaseException:
        sock.close()
        raise
    try:
        tls.do_handshake()
    except BaseException:
        tls.close()
        raise
    attempt.stage = "after the TLS handshake"
    return tls


def _say_goodbye(tls: ssl.SSLSocket, attempt: _Attempt) -> None:
    """End TLS with close_notify. A bare close with the server's session tickets still
    unread makes the kernel send a reset, which PostgreSQL logs as "could not receive
    data from client: Connection reset by peer" on every probe; a clean end it ignores."""
    with contextlib.suppress(Exception):
        tls.settimeout(attempt.left(at_most=0.5))
        tls.unwrap()


def _ssl_reason(exc: ssl.SSLError) -> str:
    return (exc.reason or str(exc)).replace("_", " ").lower()


def probe_served_certificate(
    address: str, *, postgres_preamble: bool = True, timeout: float = DEFAULT_TIMEOUT
) -> ServedCertificate:
    """Connect to `address` and return the certificate chain it serves, unverified.

    `postgres_preamble=True` for a SQL port (PostgreSQL, CockroachDB), False for direct
    TLS (CockroachDB's DB Console). Every failure is a CertRotateError naming `address`.
    """
    attempt = _Attempt(address, timeout)
    transcript = _Transcript()
    try:
        with _handshake(attempt, _client_context(transcript), postgres_preamble) as tls:
            leaf_der = tls.getpeercert(binary_form=True)
            version = tls.version() or "unknown"
            unverified = getattr(tls, "get_unverified_chain", None)  # Python 3.13+: DER bytes
            chain_der = list(unverified() or []) if unverified else []
            _say_goodbye(tls, attempt)
    except BadInput:
        raise
    except Exception as exc:  # noqa: BLE001 - every failure becomes a sentence
        raise attempt.failure(exc) from None
    if not leaf_der:
        raise CertRotateError(f"{address} completed a TLS handshake without presenting a certificate.")
    leaf = x509.load_der_x509_certificate(leaf_der)
    chain: list[x509.Certificate] = []
    with contextlib.suppress(Exception):  # a chain we cannot parse still leaves the leaf
        if chain_der:
            chain = [x509.load_der_x509_certificate(bytes(der)) for der in chain_der]
        elif transcript.server_certificate_message:
            chain = _chain_from_certificate_message(transcript.server_certificate_message, transcript.tls13)
    complete = bool(chain) and chain[0] == leaf
    return ServedCertificate(address, tuple(chain) if complete else (leaf,), version, chain_is_complete=complete)


def probe_sql(address: str, *, timeout: float = DEFAULT_TIMEOUT) -> ServedCertificate:
    """The certificate served on a PostgreSQL / CockroachDB SQL port (SSLRequest first)."""
    return probe_served_certificate(address, postgres_preamble=True, timeout=timeout)


def probe_http(address: str, *, timeout: float = DEFAULT_TIMEOUT) -> ServedCertificate:
    """The certificate served on CockroachDB's DB Console (direct TLS)."""
    return probe_served_certificate(address, postgres_preamble=False, timeout=timeout)


def wait_for_fingerprint(
    address: str,
    expected: str,
    timeout: float = 10.0,
    *,
    postgres_preamble: bool = True,
    interval: float = 0.2,
) -> str:
    """Poll until `address` serves the certificate with sha256 `expected`; return the last one seen.

    PostgreSQL reloads its SSL files after SIGHUP asynchronously, and a node that refuses
    the new files keeps serving the old ones: the caller compares the returned
    fingerprint with `expected`. Failed probes in between are retried (a node may be
    restarting); if not one probe succeeded, the last failure is raised.
    """
    expected = expected.lower().replace(":", "")
    end = time.monotonic() + timeout
    last_seen: str | None = None
    last_error: CertRotateError | None = None
    while True:
        left = end - time.monotonic()
        try:
            served = probe_served_certificate(
                address, postgres_preamble=postgres_preamble, timeout=max(0.5, min(DEFAULT_TIMEOUT, left))
            )
            last_seen = served.fingerprint
            if last_seen == expected:
                return last_seen
        except BadInput:
            raise
        except CertRotateError as exc:
            last_error = exc
        if time.monotonic() + interval >= end:
            break
        time.sleep(interval)
    if last_seen is None:
        assert last_error is not None
        raise last_error
    return last_seen


def make_probe_client(ca: Issued, user: str = PROBE_USER) -> Issued:
    """A throwaway client certificate signed by `ca`, valid one hour (P-256: quick to make)."""
    return issue_client(ca, user, key_type="ecdsa-p256", lifetime=dt.timedelta(hours=1))


def _startup_message(user: str, database: str) -> bytes:
    params = b"".join(k.encode() + b"\0" + v.encode() + b"\0" for k, v in (("user", user), ("database", database)))
    body = struct.pack("!i", PROTOCOL_3_0) + params + b"\0"
    return struct.pack("!i", len(body) + 4) + body


def _message_fields(body: bytes) -> dict[str, str]:
    return {chr(part[0]): part[1:].decode("utf-8", "replace") for part in body.split(b"\0") if part}


def _read_server_reply(tls: ssl.SSLSocket, attempt: _Attempt) -> tuple[str, str]:
    """The type and a readable summary of the server's first protocol message."""
    header = _recv_exact(tls, 5, attempt)
    kind, length = chr(header[0]), struct.unpack("!i", header[1:])[0]
    body = _recv_exact(tls, min(max(length - 4, 0), 8192), attempt)
    if kind in "EN":
        fields = _message_fields(body)
        return kind, f"{fields.get('S', 'ERROR')}: {fields.get('M', 'no message')}"
    if kind == "R":
        code = struct.unpack("!i", body[:4])[0] if len(body) >= 4 else -1
        return kind, "authentication ok" if code == 0 else f"an authentication request (code {code})"
    return kind, f"a message of type {kind!r}"


def _send_startup(tls: ssl.SSLSocket, attempt: _Attempt, user: str, database: str) -> None:
    attempt.apply(tls)
    try:
        tls.sendall(_startup_message(user, database))
    except OSError:
        # A server that refused our certificate may have sent its alert and closed before
        # our write; the write then fails, but the alert still waits in the receive
        # buffer. Read it, so the transcript knows why.
        with contextlib.suppress(Exception):
            tls.settimeout(attempt.left(at_most=1.0))
            tls.recv(1)
        raise


def _wait_for_verdict(tls: ssl.SSLSocket, transcript: _Transcript, attempt: _Attempt) -> str:
    """Direct TLS: a refusal comes as an alert right after our handshake; give it a moment."""
    grace_end = time.monotonic() + attempt.left(at_most=1.0)
    while time.monotonic() < grace_end:
        if transcript.session_ticket_seen:
            return "a session ticket"
        tls.settimeout(max(0.01, min(0.1, grace_end - time.monotonic())))
        try:
            data = tls.recv(1)
        except TimeoutError:
            continue
        if not data:
            raise EOFError
        return "application data"
    return "nothing yet (it waits for a request)"


def _rejection(transcript: _Transcript, exc: BaseException | None) -> str | None:
    """The alert's name if the server refused our certificate, else None."""
    if transcript.alert_received in _CERTIFICATE_ALERTS:
        return _CERTIFICATE_ALERTS[transcript.alert_received]
    if isinstance(exc, ssl.SSLError) and exc.reason and exc.reason.endswith(_CERTIFICATE_ALERT_REASONS):
        return _ssl_reason(exc)
    return None


def probe_trust(
    address: str,
    ca: Issued,
    *,
    postgres_preamble: bool = True,
    timeout: float = 10.0,
    client: Issued | None = None,
    user: str = PROBE_USER,
    database: str = "postgres",
) -> TrustResult:
    """Does the node at `address` trust `ca` for client certificates right now?

    We present a throwaway client certificate signed by `ca` (the operator holds its
    key; pass `client` from make_probe_client() to reuse one across nodes) and watch
    what the server does with it:

    - TLS 1.2 verifies the client certificate inside the handshake: a refusal is an
      alert that fails `do_handshake()`.
    - TLS 1.3 verifies it *after* the client has finished its side: `do_handshake()`
      succeeds either way and the refusal (an alert: "unknown CA", "bad certificate",
      "certificate unknown", ...) is what our first read returns. So on a SQL port we
      send a PostgreSQL StartupMessage and read the reply. Any PostgreSQL message
      ('R' authentication request, or 'E' such as "certificate authentication failed
      for user", "role does not exist", "no pg_hba.conf entry") proves the TLS layer
      accepted the certificate: PostgreSQL and CockroachDB read the startup packet
      only after the handshake, certificate check included, has succeeded. The role
      being refused is a matter of users, not of CA trust.
    - A server that never asks for a client certificate verifies none, so it trusts no
      client CA (PostgreSQL without ssl_ca_file): not trusted, with that reason. Seen in
      the handshake transcript where Python exposes it, else in PostgreSQL's
      "connection requires a valid client certificate".
    - Direct TLS (`postgres_preamble=False`) has no protocol to speak: a certificate
      alert within a short grace period means not trusted; a TLS 1.3 session ticket
      (sent only after the server checked our certificate) or silence means trusted.

    What allows no conclusion (refused, timeout, another TLS error, a close without an
    alert) raises CertRotateError naming `address`. The whole probe takes at most
    `timeout` seconds. The node logs the attempt like any login; with hba `cert` that
    is `FATAL: role "certrotate-probe" does not exist`, which is expected.
    """
    attempt = _Attempt(address, timeout)
    ca_name = ca.certificate.subject.rfc4514_string()
    transcript = _Transcript()
    context = _client_context(transcript)
    _load_client_certificate(context, client or make_probe_client(ca, user))

    def rejected(alert: str) -> TrustResult:
        return TrustResult(False, f"{address} rejected a client certificate signed by {ca_name} ({alert}).", address)

    try:
        with _handshake(attempt, context, postgres_preamble) as tls:
            if postgres_preamble:
                _send_startup(tls, attempt, user, database)
                attempt.stage = "before answering the startup message"
                kind, answer = _read_server_reply(tls, attempt)
                with contextlib.suppress(OSError):
                    tls.sendall(b"X\0\0\0\4")  # Terminate
            else:
                kind, answer = "", _wait_for_verdict(tls, transcript, attempt)
    except BadInput:
        raise
    except Exception as exc:  # noqa: BLE001 - every failure becomes a verdict or a sentence
        alert = _rejection(transcript, exc)
        if alert:
            return rejected(alert)
        raise attempt.failure(exc) from None
    if (transcript.hooked and not transcript.certificate_requested) or (
        kind == "E" and "requires a valid client certificate" in answer
    ):
        return TrustResult(
            False,
            f"{address} did not ask for a client certificate, so it trusts no client CA "
            "(PostgreSQL: ssl_ca_file is not set).",
            address,
        )
    return TrustResult(True, f"{address} accepted a client certificate signed by {ca_name}; then it sent {answer}.", address)


TRUST_RETRY_SECONDS = 0.3


def wait_for_trust(address: str, ca: Issued, trusted: bool, *, timeout: float, client: Issued | None = None,
                   user: str = PROBE_USER, retry_errors: bool = False) -> TrustResult | str:
    """Probe until the node's verdict on `ca` is `trusted` or `timeout` passes: the last TrustResult when it
    came, else (the verdict never came) the sentence of what was last seen.

    A reload takes a moment to reach the TLS layer, so one probe is not proof. `retry_errors`
    keeps going through probes that reach no verdict (a pod restarting); without it they raise.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = probe_trust(address, ca, client=client, user=user)
            if result.trusted == trusted:
                return result
            detail = result.detail
        except CertRotateError as error:
            if not retry_errors:
                raise
            detail = str(error)
        if time.monotonic() >= deadline:
            return detail
        time.sleep(TRUST_RETRY_SECONDS)
