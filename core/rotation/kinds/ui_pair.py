"""The operator's UI certificate and key, checked before anything leaves their machine.

`check_pair` is pure: one finding per check, which the wizard shows (tui.screens.ui_cert)
and `certrotate start ui` turns into its first failure's sentence. `check_files` reads the
pair the operator names. The `ui` kind (core.rotation.kinds.ui) imports this module where it
starts or rolls out a pair, so the kinds registry, which the wizard reads before its first
frame, loads none of it; what reads certificates and keys (cryptography) is imported in the
function that uses it.
"""

from __future__ import annotations

import datetime as dt
import os
import stat
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterable

from core import files, pki
from core.config.inventory import NodeConfig, resolve_local, split_address
from core.errors import BadInput
from core.findings import FAIL, OK, Finding, first_problem

if TYPE_CHECKING:
    from cryptography import x509

    from core.config.state import State


@dataclass(frozen=True)
class UiPair:
    """A checked ui.crt (the leaf, then any intermediates) and its key. The key is never in repr()."""

    chain_pem: bytes
    key_pem: bytes = field(repr=False)
    leaf: x509.Certificate = field(repr=False)

    @property
    def fingerprint(self) -> str:
        return pki.sha256_fingerprint(self.leaf)

    @classmethod
    def read(cls, chain_pem: bytes, key_pem: bytes, source: str) -> UiPair:
        """The pair of files already checked: its leaf is the chain's first certificate."""
        from core.pki.bundle import parse_certificates

        return cls(chain_pem, key_pem, parse_certificates(chain_pem, source)[0].certificate)


# -- checks (pure) ------------------------------------------------------------------------------


def _usage_problem(leaf: x509.Certificate) -> str | None:
    from cryptography import x509
    from cryptography.x509.oid import ExtendedKeyUsageOID

    try:
        usages = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return None  # no EKU: any usage
    if ExtendedKeyUsageOID.SERVER_AUTH in usages:
        return None
    return "lacks the serverAuth extended key usage, so browsers refuse it for a web server; ask your CA for a TLS server certificate"


def _chain_problem(chain: list[x509.Certificate]) -> str | None:
    for index in range(len(chain) - 1):
        try:
            chain[index].verify_directly_issued_by(chain[index + 1])
        except Exception:  # noqa: BLE001 - a wrong issuer name, signature or key type all mean the same
            return (f"has certificate {index + 2} that did not issue certificate {index + 1}; put the server "
                    "certificate first, then its intermediates in order")
    return None


def check_pair(cert_pem: bytes, key_pem: bytes, *, cert_source: str, key_source: str, key_mode: int | None,
               nodes: Iterable[NodeConfig], now: dt.datetime) -> list[Finding]:
    """Every check of a bring-your-own UI certificate, one finding each; nothing is read or sent.

    A file that does not parse stops the checks there (nothing else can be judged).
    `key_mode` is the local key file's permission bits (None: not a file of the operator's).
    """
    from core.pki.bundle import parse_certificates
    from core.pki.keys import key_matches_certificate, load_private_key
    from core.pki.names import covers_for_browser

    findings: list[Finding] = []
    if key_mode is not None:
        if key_mode & 0o077:
            findings.append(Finding(FAIL, "permissions",
                                    f"{key_source} is readable by {'group and others' if key_mode & 0o007 else 'its group'} "
                                    f"(mode {key_mode:04o}); a private key must be yours alone: run `chmod 600 {key_source}`."))
        else:
            findings.append(Finding(OK, "permissions", f"{key_source} is readable by its owner only ({key_mode:04o})."))
    try:
        chain = [entry.certificate for entry in parse_certificates(cert_pem, cert_source)]
    except BadInput as error:
        return findings + [Finding(FAIL, "pem", str(error))]
    try:
        key = load_private_key(key_pem, key_source)
    except BadInput as error:
        return findings + [Finding(FAIL, "pem", str(error))]
    leaf = chain[0]
    extra = f" with {len(chain) - 1} intermediate(s)" if len(chain) > 1 else ""
    findings.append(Finding(OK, "pem", f"{cert_source} holds {pki.common_name(leaf) or leaf.subject.rfc4514_string()}{extra}."))
    if key_matches_certificate(key, leaf.public_key()):
        findings.append(Finding(OK, "key", f"{key_source} is the key of {cert_source}."))
    else:
        findings.append(Finding(FAIL, "key", f"{key_source} does not match {cert_source}: they are not a key pair."))
    if leaf.not_valid_after_utc <= now:
        findings.append(Finding(FAIL, "validity", f"{cert_source} expired on {leaf.not_valid_after_utc:%Y-%m-%d}."))
    elif leaf.not_valid_before_utc > now:
        findings.append(Finding(FAIL, "validity", f"{cert_source} is not valid before "
                                                   f"{leaf.not_valid_before_utc:%Y-%m-%d %H:%M} UTC."))
    else:
        findings.append(Finding(OK, "validity", f"{cert_source} is valid until {leaf.not_valid_after_utc:%Y-%m-%d}."))
    usage = _usage_problem(leaf)
    findings.append(Finding(OK if usage is None else FAIL, "usage", f"{cert_source} {usage}." if usage else
                            f"{cert_source} may serve TLS (serverAuth)."))
    chain_problem = _chain_problem(chain)
    if chain_problem:
        findings.append(Finding(FAIL, "chain", f"{cert_source} {chain_problem}."))
    for node in nodes:
        if not node.http_addr:
            findings.append(Finding(FAIL, "http_addr", f"{node.name} has no http_addr in the inventory, so the UI "
                                    "certificate it serves cannot be verified; add http_addr = \"host:port\" to it.",
                                    node.name))
            continue
        host, _ = split_address(node.http_addr)
        if covers_for_browser(host, leaf):
            findings.append(Finding(OK, "san", f"{node.name}: {host} is covered.", node.name))
        else:
            findings.append(Finding(FAIL, "san", f"{cert_source} does not cover {node.name}'s http_addr host {host} "
                                    f"(its SANs: {', '.join(pki.san_strings(leaf)) or 'none'}); browsers would refuse "
                                    "it there.", node.name))
    return findings


# -- the operator's files (I/O edge) ------------------------------------------------------------


@dataclass(frozen=True)
class Checked:
    """The outcome of checking the operator's files: every finding, and the pair when all passed."""

    findings: list[Finding]
    pair: UiPair | None

    @property
    def problem(self) -> str | None:
        return first_problem(self.findings)


def configured_paths(state: State) -> tuple[str | None, str | None]:
    cluster = state.inventory.cluster
    return cluster.ui_cert, cluster.ui_key


def check_files(state: State, cert_path: str | None = None, key_path: str | None = None, *,
                now: dt.datetime | None = None) -> Checked:
    """Read and check the pair the operator names (else the inventory's ui_cert/ui_key)."""
    if bool(cert_path) != bool(key_path):
        raise BadInput("Give both the UI certificate and its key (--cert and --key), or neither to use [cluster] "
                       "ui_cert and ui_key.")
    cert_path = cert_path or state.inventory.cluster.ui_cert
    key_path = key_path or state.inventory.cluster.ui_key
    if not cert_path or not key_path:
        raise BadInput("No UI certificate given: set ui_cert and ui_key in [cluster] (paths on this machine), "
                       "or pass --cert and --key.")
    cert_file, key_file = resolve_local(cert_path, state.base_dir), resolve_local(key_path, state.base_dir)
    cert_pem = files.read_bytes(cert_file, "The UI certificate")
    key_pem = files.read_bytes(key_file, "The UI key")
    key_mode = stat.S_IMODE(os.stat(key_file).st_mode)
    findings = check_pair(cert_pem, key_pem, cert_source=cert_path, key_source=key_path, key_mode=key_mode,
                          nodes=state.inventory.nodes, now=now or pki.utcnow())
    pair = UiPair.read(cert_pem, key_pem, cert_path) if first_problem(findings) is None else None
    return Checked(findings, pair)
