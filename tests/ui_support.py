"""An organisational CA for the UI certificate tests, and a TLS client that checks a node's console
the way a browser would: against that CA only, with the host name checked."""

from __future__ import annotations

import datetime as dt
import os
import socket
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from core import pki
from core.bundle import join_pem
from core.lab.cluster import Lab
from tests.rotation_support import edit_inventory

UI_PROFILE = pki.Profile("ui", is_ca=False, extended_key_usage=(ExtendedKeyUsageOID.SERVER_AUTH,))
KEY_TYPE = "ecdsa-p256"


class OrgCA:
    """A root and an intermediate, as a company PKI (or a public CA) would have."""

    def __init__(self) -> None:
        self.root = pki.issue_ca(key_type=KEY_TYPE, common_name="Example Org Root CA")
        now = pki.utcnow()
        key = pki.generate_private_key(KEY_TYPE)
        cert = pki.build_certificate(pki.CA_PROFILE, common_name="Example Org Issuing CA", key=key,
                                     lifetime=dt.timedelta(days=365), now=now, issuer=self.root)
        self.intermediate = pki.Issued(cert, key)

    def issue_ui(self, addresses: list[str], *, now: dt.datetime | None = None,
                 lifetime: dt.timedelta = dt.timedelta(days=90)) -> pki.Issued:
        key = pki.generate_private_key(KEY_TYPE)
        cert = pki.build_certificate(UI_PROFILE, common_name="console.example.org", key=key, lifetime=lifetime,
                                     now=now or pki.utcnow(), issuer=self.intermediate,
                                     sans=pki.subject_alternative_names(["console.example.org", *addresses]))
        return pki.Issued(cert, key)

    def chain_pem(self, leaf: pki.Issued) -> bytes:
        return join_pem([leaf.cert_pem, self.intermediate.cert_pem])


def write_ui_files(lab: Lab, cert_pem: bytes, key_pem: bytes, *, key_mode: int = 0o600,
                   in_inventory: bool = True) -> tuple[Path, Path]:
    """Put the pair under operator/ui/ and (by default) name it in [cluster] ui_cert/ui_key."""
    directory = lab.operator_dir / "ui"
    directory.mkdir(exist_ok=True)
    cert_path, key_path = directory / "ui.crt", directory / "ui.key"
    cert_path.write_bytes(cert_pem)
    key_path.write_bytes(key_pem)
    os.chmod(key_path, key_mode)
    if in_inventory:
        def name_them(data):
            data["cluster"]["ui_cert"] = "ui/ui.crt"
            data["cluster"]["ui_key"] = "ui/ui.key"
        edit_inventory(lab, name_them)
    return cert_path, key_path


def browse_console(node, org_root: pki.Issued) -> tuple[x509.Certificate, bytes]:
    """GET / from the node's http_addr like a browser: trust only the org CA, check the host name."""
    context = ssl.create_default_context(cadata=org_root.cert_pem.decode())
    context.check_hostname = True
    host, port = node.http_addr.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname=node.address) as tls:
            served = x509.load_der_x509_certificate(tls.getpeercert(binary_form=True))
            tls.sendall(f"GET / HTTP/1.0\r\nHost: {node.address}\r\n\r\n".encode())
            response = b""
            while chunk := tls.recv(4096):
                response += chunk
    return served, response
