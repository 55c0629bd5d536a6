"""`certrotate doctor`: the checks an expert runs when a client cannot connect, one finding each.

Two entry points, both returning plain findings (OK / WARN / FAIL, and SKIP for a check
that could not be run, with the reason):

- `doctor_node`: a node of the state file. What it serves (probed like a client would)
  against the operator's local trust bundle, its expiry, its SANs against every address
  the inventory uses for it, what it serves against its node.crt on disk (read over SSH:
  a difference means a reload is pending), and — only when the operator holds the CA key
  — whether it trusts the current CA for client certificates.
- `doctor_certs_dir`: a client's certs dir (ca.crt, client.<user>.crt/.key) and the
  address it connects to: the same served checks against that ca.crt, and the client's
  own files (expiry, key pair, key permissions, chain).

`explain(error_text)` turns what a client printed (libpq, Go's crypto/tls, OpenSSL) into
the cause and the fix in words. No finding ever carries key material: keys are loaded to
compare public halves and nothing else.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Callable, NamedTuple

from cryptography import x509

from core import files
from core.config.inventory import NodeConfig, resolve_local
from core.diagnose import format_checks
from core.errors import BadInput, CertRotateError
from core.findings import FAIL, OK, SKIP, WARN, Finding, exit_code, expiry_finding  # noqa: F401 - doctor's API
from core.pki import Issued, san_strings, sha256_fingerprint
from core.pki.bundle import parse_bundle, parse_certificates
from core.pki.certs_dir import (
    CA_CERT,
    NODE_CERT,
    UI_CERT,
    client_cert_name,
    client_key_name,
    client_signing_ca_path,
    key_permission_problem,
    load_ca,
)
from core.pki.checks import check_chain
from core.pki.keys import key_matches_certificate, load_private_key
from core.pki.names import covers_for_browser, covers_for_node
from core.remote import probes

DEFAULT_WARN_DAYS = 30
RemoteReader = Callable[[NodeConfig, str], bytes]  # (node, remote path) -> the file's bytes


# -- explain ----------------------------------------------------------------------------------


class Explanation(NamedTuple):
    cause: str
    fix: str


_UNKNOWN_CA_CLIENT = Explanation(
    "The server does not trust the CA that signed your client certificate "
    "(it is not in the node's ca.crt, or ca-client.crt when the cluster has one).",
    "Issue the client certificate from a CA the nodes trust, or add its CA to the nodes' bundle "
    "first (the trust phase of `certrotate start ca`) and reload them.",
)
_UNTRUSTED_SERVER = Explanation(
    "Your client does not trust the CA that signed the server's certificate: the CA bundle it uses "
    "(sslrootcert, --certs-dir ca.crt) lacks the node's CA — typically after a CA rotation reached the "
    "nodes but not this client.",
    "Give the client the cluster's current ca.crt (during a rotation, the combined bundle with both CAs); "
    "`certrotate doctor NODE` shows which CA the node's certificate chains to.",
)

# Checked in order: the server's alerts about *our* certificate come before the client's
# own verification errors, because "alert certificate expired" also contains "certificate expired".
_PATTERNS: tuple[tuple[re.Pattern[str], Explanation], ...] = (
    (re.compile(r"alert unknown ca|unknown ca\b|tls: unknown certificate authority", re.I), _UNKNOWN_CA_CLIENT),
    (
        re.compile(r"alert certificate expired|tls: expired certificate", re.I),
        Explanation(
            "The server refused your client certificate because it has expired (or the server's clock "
            "is ahead of its notBefore/notAfter window).",
            "Issue a new client certificate (`certrotate start clients`, or `certrotate cert create-client "
            "--overwrite`) and deliver it; check the client's and the node's clocks.",
        ),
    ),
    (
        re.compile(r"alert bad certificate|\bbad certificate|alert certificate unknown", re.I),
        Explanation(
            "The server refused your client certificate: it could not verify it (signed by a CA it does not "
            "trust, missing the clientAuth usage, or not matching the key you presented).",
            "Run `certrotate doctor --certs-dir DIR --user USER --host HOST:PORT` to check the client's files, "
            "and make sure its CA is in the nodes' ca.crt.",
        ),
    ),
    (
        re.compile(r"certificate has expired|certificate is not yet valid|x509: certificate has expired", re.I),
        Explanation(
            "A certificate in the server's chain (the node certificate or its CA) is outside its validity "
            "period, or the client's clock is wrong.",
            "Rotate the node certificates (`certrotate start nodes`, or `start ca` if the CA expired) and "
            "check the client's clock.",
        ),
    ),
    (
        re.compile(r"does not match host name|x509: certificate is valid for|hostname mismatch|"
                   r"doesn't match|not valid for any names", re.I),
        Explanation(
            "The address you connected to is not among the server certificate's subject alternative names "
            "(SANs), and verify-full checks the name.",
            "Connect by a name or IP the certificate lists (`certrotate doctor` prints them), or add the "
            "address to the node's `addresses` and rotate its certificate (`certrotate start nodes`).",
        ),
    ),
    (re.compile(r"signed by unknown authority|certificate verify failed|unable to get local issuer|"
                r"self[- ]signed certificate in certificate chain", re.I), _UNTRUSTED_SERVER),
    (
        re.compile(r"SSL SYSCALL error: EOF detected|unexpected eof|EOF detected", re.I),
        Explanation(
            "The connection was closed in the middle of the TLS handshake without a TLS alert: the server "
            "crashed or restarted, a proxy or load balancer cut it, the port does not speak TLS, or the "
            "server dropped a client certificate it refused.",
            "Look at the node's log at that time, check that the address is the node's SQL port, and run "
            "`certrotate doctor` against it.",
        ),
    ),
    (
        re.compile(r"requires a valid client certificate", re.I),
        Explanation(
            "The client sent no client certificate, and the server requires one.",
            "Point the client at client.<user>.crt and .key (sslcert/sslkey, or --certs-dir).",
        ),
    ),
)

UNKNOWN = Explanation(
    "This is not one of the TLS errors certrotate recognises.",
    "Run `certrotate doctor` against the node and the client's certs dir; it checks chain, expiry, "
    "names, keys and permissions.",
)


def explain(error_text: str) -> Explanation:
    """The cause and the fix, in words, of a client's TLS error message."""
    for pattern, explanation in _PATTERNS:
        if pattern.search(error_text or ""):
            return explanation
    return UNKNOWN


# -- the checks -------------------------------------------------------------------------------


def load_trusted(bundle_path: Path, now: dt.datetime, warn_days: int, label: str) -> tuple[list[Finding], list[x509.Certificate]]:
    """The CAs of a trust bundle, with a finding per CA about its expiry."""
    try:
        trusted = parse_bundle(files.read_bytes(bundle_path, label), str(bundle_path)).certificates
    except BadInput as error:
        return [Finding(FAIL, "bundle", str(error))], []
    findings = [
        expiry_finding(f"CA {ca.subject.rfc4514_string()} in {bundle_path}", ca.not_valid_after_utc, now, warn_days=warn_days)
        for ca in trusted
    ]
    return findings, trusted


def check_served(
    address: str,
    trusted: list[x509.Certificate],
    now: dt.datetime,
    warn_days: int,
    *,
    names: list[str],
    bundle_label: str,
    timeout: float = probes.DEFAULT_TIMEOUT,
) -> tuple[list[Finding], probes.ServedCertificate | None]:
    """Chain, expiry and names of the certificate `address` serves."""
    try:
        served = probes.probe_sql(address, timeout=timeout)
    except CertRotateError as error:
        return [Finding(FAIL, "served", f"cannot read the certificate served on {address}: {error}")], None
    findings = [Finding(OK, "served", f"{address} serves {served.subject} (sha256 {served.fingerprint[:16]}…).")]
    if trusted:
        try:
            check_chain(served.leaf, trusted, f"the certificate served on {address}", at=[now], client=False)
            findings.append(Finding(OK, "chain", f"the certificate served on {address} chains to {bundle_label}."))
        except BadInput as error:
            findings.append(Finding(FAIL, "chain", f"{error} Clients trusting only {bundle_label} will refuse it."))
    findings.append(expiry_finding(f"the certificate served on {address}", served.not_after, now, warn_days=warn_days))
    findings += name_findings(names, served.leaf, "verify-full clients")
    return findings, served


def name_findings(names: list[str], certificate: x509.Certificate, who: str,
                  covers: Callable[[str, x509.Certificate], bool] = covers_for_node) -> list[Finding]:
    """One finding per name a client uses: covered by the served certificate (by `who`'s rule,
    see core.pki.names), or why `who` refuse it."""
    findings = []
    sans = san_strings(certificate)
    for name in dict.fromkeys(names):
        if covers(name, certificate):
            findings.append(Finding(OK, "hostname", f"{name} is among the served certificate's SANs."))
        else:
            findings.append(Finding(FAIL, "hostname", f"the served certificate is valid for {', '.join(sans) or 'no names'}, "
                                                      f"not for {name}: {who} using that name will refuse it."))
    return findings


def check_on_disk(served: probes.ServedCertificate, on_disk_pem: bytes, path: str) -> Finding:
    """A node that serves something else than its node.crt has not reloaded since the file changed."""
    try:
        on_disk = parse_certificates(on_disk_pem, path)[0].certificate
    except BadInput as error:
        return Finding(FAIL, "on-disk", f"{error}")
    disk_print = sha256_fingerprint(on_disk)
    if disk_print == served.fingerprint:
        return Finding(OK, "on-disk", f"the node serves its {path}.")
    return Finding(
        WARN,
        "on-disk",
        f"served ≠ on disk: reload pending ({path} is sha256 {disk_print[:16]}…, "
        f"served {served.fingerprint[:16]}…); run the node's reload command, or find why it refused the new files.",
    )


def check_trust(address: str, ca_bundle: Path, ca_key: Path | None, *, timeout: float = 10.0) -> Finding:
    """Does the node accept a client certificate signed by the current CA? Needs the CA key."""
    if ca_key is None or not ca_key.exists():
        return Finding(SKIP, "client-ca", "whether the node trusts the client CA is not checked: the CA key is not at hand.")
    try:
        ca = load_ca(ca_bundle, ca_key)
    except BadInput as error:
        return Finding(SKIP, "client-ca", f"whether the node trusts the client CA is not checked: {error}")
    try:
        result = probes.probe_trust(address, ca, timeout=timeout)
    except CertRotateError as error:
        return Finding(WARN, "client-ca", f"could not tell whether {address} trusts the client CA: {error}")
    return Finding(OK if result.trusted else FAIL, "client-ca", result.detail)


def check_client_accepted(address: str, certs_dir: Path, user: str, *, timeout: float = 10.0) -> Finding | None:
    """Present client.<user>.crt/.key to the node in a real handshake: is it accepted?

    No CA key needed: the client's own certificate and key are what a client presents.
    None when the files are unusable (check_client_files already says why).
    """
    cert_path, key_path = certs_dir / client_cert_name(user), certs_dir / client_key_name(user)
    try:
        certificate = parse_certificates(cert_path.read_bytes(), str(cert_path))[0].certificate
        key = load_private_key(key_path.read_bytes(), str(key_path))
    except (OSError, BadInput):
        return None
    if not key_matches_certificate(key, certificate.public_key()):
        return None
    client = Issued(certificate, key)
    try:
        # probe_trust names the CA from its `ca` argument only; with `client` given it signs nothing.
        result = probes.probe_trust(address, client, client=client, user=user, timeout=timeout)
    except CertRotateError as error:
        return Finding(WARN, "client-accepted", f"could not tell whether {address} accepts {cert_path.name}: {error}")
    if result.trusted:
        return Finding(OK, "client-accepted", f"{address} accepts {cert_path.name} in the TLS handshake.")
    reason = result.detail.rsplit("(", 1)[-1].rstrip(").") if "(" in result.detail else result.detail
    return Finding(FAIL, "client-accepted", f"{address} rejects {cert_path.name} ({reason}).")


def check_client_files(certs_dir: Path, user: str, now: dt.datetime, warn_days: int,
                       p12_password: bytes | None = None) -> list[Finding]:
    """client.<user>.crt/.key: present, a key pair, key permissions, expiry, chain to the local CAs;
    and client.<user>.key.pk8 / client.<user>.p12 beside them, when present (core.diagnose.format_checks)."""
    cert_path, key_path = certs_dir / client_cert_name(user), certs_dir / client_key_name(user)
    try:
        certificate = parse_certificates(files.read_bytes(cert_path, "Client certificate"), str(cert_path))[0].certificate
    except BadInput as error:
        return [Finding(FAIL, "client", str(error))]
    findings = [expiry_finding(f"client certificate {cert_path}", certificate.not_valid_after_utc, now, warn_days=warn_days)]
    key_forms = format_checks.check_key_forms(certs_dir, user, certificate, p12_password)
    findings += key_forms
    if not key_path.exists():
        # A Java-only client may hold its key as .pk8 or .p12 alone: then no PEM key is fine.
        return findings + ([] if key_forms else [Finding(FAIL, "client-key", f"{key_path} does not exist.")])
    problem = key_permission_problem(key_path)
    if problem:
        findings.append(
            Finding(FAIL, "permissions", f"{problem}; clients refuse such a key: chmod 600 {key_path}.")
        )
    else:
        findings.append(Finding(OK, "permissions", f"{key_path} is readable by its owner only."))
    try:
        key = load_private_key(files.read_bytes(key_path, "Client key"), str(key_path))
    except BadInput as error:
        return findings + [Finding(FAIL, "client-key", str(error))]
    if key_matches_certificate(key, certificate.public_key()):
        findings.append(Finding(OK, "client-key", f"{key_path.name} matches {cert_path.name}."))
    else:
        findings.append(
            Finding(FAIL, "client-key", f"{key_path.name} does not match {cert_path.name}: they are not a key pair.")
        )
    signing_bundle = client_signing_ca_path(certs_dir)
    if signing_bundle.exists():
        try:
            trusted = parse_bundle(signing_bundle.read_bytes(), str(signing_bundle)).certificates
            check_chain(certificate, trusted, f"client certificate {cert_path.name}", at=[now], client=True)
            findings.append(Finding(OK, "client-chain", f"{cert_path.name} chains to {signing_bundle}."))
        except BadInput as error:
            findings.append(Finding(FAIL, "client-chain", str(error)))
    return findings


# -- the two entry points ---------------------------------------------------------------------


def doctor_certs_dir(
    certs_dir: Path,
    user: str | None,
    host: str | None,
    *,
    now: dt.datetime,
    warn_days: int = DEFAULT_WARN_DAYS,
    ca_key: Path | None = None,
    timeout: float = probes.DEFAULT_TIMEOUT,
    p12_password: bytes | None = None,
) -> list[Finding]:
    """A client's certs dir, and the node at `host` (host:port) as that client sees it."""
    certs_dir = Path(certs_dir)
    if not certs_dir.is_dir():
        raise BadInput(f"Certs directory {certs_dir} does not exist.")
    bundle_path = certs_dir / CA_CERT
    findings, trusted = load_trusted(bundle_path, now, warn_days, "CA bundle")
    if user:
        findings += check_client_files(certs_dir, user, now, warn_days, p12_password)
    if host:
        name, _port = probes.split_address(host)
        served_findings, served = check_served(
            host, trusted, now, warn_days, names=[name], bundle_label=str(bundle_path), timeout=timeout
        )
        findings += served_findings
        if served is not None and user:
            accepted = check_client_accepted(host, certs_dir, user)
            findings += [accepted] if accepted else []
        if served is not None and ca_key is not None:
            findings.append(check_trust(host, bundle_path, ca_key))
    return findings


def check_console(node: NodeConfig, now: dt.datetime, warn_days: int, read_remote: RemoteReader | None, *,
                  timeout: float = probes.DEFAULT_TIMEOUT) -> list[Finding]:
    """The DB Console on `http_addr`: what it serves, until when, for which name, and whether that is the
    certificate on disk — ui.crt when the node has one (CockroachDB serves it then), else node.crt."""
    address = node.http_addr
    try:
        served = probes.probe_http(address, timeout=timeout)
    except CertRotateError as error:
        return [Finding(FAIL, "console", f"cannot read the certificate the DB Console serves on {address}: {error}")]
    findings = [Finding(OK, "console", f"the DB Console on {address} serves {served.subject} "
                                       f"(sha256 {served.fingerprint[:16]}…)."),
                expiry_finding(f"the certificate served on {address}", served.not_after, now, warn_days=warn_days)]
    findings += name_findings([probes.split_address(address)[0]], served.leaf, "browsers", covers_for_browser)
    if read_remote is None:
        return findings
    base = node.certs_dir.rstrip("/")
    try:
        on_disk_path = f"{base}/{UI_CERT}"
        on_disk = read_remote(node, on_disk_path)
    except CertRotateError:  # no ui.crt: the console serves node.crt, as CockroachDB does
        on_disk_path = f"{base}/{NODE_CERT}"
        try:
            on_disk = read_remote(node, on_disk_path)
        except CertRotateError as error:
            return findings + [Finding(WARN, "on-disk", f"cannot read {on_disk_path} on {node.name}: {error}")]
    return findings + [check_on_disk(served, on_disk, on_disk_path)]


def doctor_node(
    node: NodeConfig,
    base_dir: Path,
    local_certs_dir: str,
    ca_key: str,
    *,
    now: dt.datetime,
    warn_days: int = DEFAULT_WARN_DAYS,
    user: str | None = None,
    read_remote: RemoteReader | None = None,
    timeout: float = probes.DEFAULT_TIMEOUT,
    console: bool = True,
) -> list[Finding]:
    """A node of the inventory, seen from the operator's workspace.

    `read_remote(node, path) -> bytes` reads a file on the node (over SSH); None skips the
    served-versus-on-disk checks. `console`: also check the DB Console on `http_addr` when the
    node has one (not when the node only stands in for a client's server).
    """
    local = resolve_local(local_certs_dir, base_dir)
    bundle_path = local / CA_CERT
    findings, trusted = load_trusted(bundle_path, now, warn_days, "The local CA bundle")
    if user:
        findings += check_client_files(local, user, now, warn_days)
    if not node.sql_addr:
        return findings + [Finding(SKIP, "served", f"node {node.name} has no sql_addr in the inventory to probe.")]
    probe_host, _port = probes.split_address(node.sql_addr)
    names = [probe_host, *node.addresses]
    served_findings, served = check_served(
        node.sql_addr, trusted, now, warn_days, names=names, bundle_label=f"the local bundle {bundle_path}", timeout=timeout
    )
    findings += served_findings
    if served is None:
        return findings
    remote_path = f"{node.certs_dir.rstrip('/')}/{NODE_CERT}"
    if read_remote is None:
        findings.append(Finding(SKIP, "on-disk", f"{remote_path} on {node.name} was not read (no SSH)."))
    else:
        try:
            findings.append(check_on_disk(served, read_remote(node, remote_path), remote_path))
        except CertRotateError as error:
            findings.append(Finding(WARN, "on-disk", f"cannot read {remote_path} on {node.name}: {error}"))
    if user:
        accepted = check_client_accepted(node.sql_addr, local, user)
        findings += [accepted] if accepted else []
    findings.append(check_trust(node.sql_addr, bundle_path, resolve_local(ca_key, base_dir)))
    if console and node.http_addr:
        findings += check_console(node, now, warn_days, read_remote, timeout=timeout)
    return findings
