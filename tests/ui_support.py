"""Helpers of the UI certificate tests: the pair on the operator's disk, and a TLS client that
checks a node's console the way a browser would: against the organisation's CA only, with the
host name checked. The CA itself is core.lab.org_ca's, which the demo uses too."""

from __future__ import annotations

import os
import socket
import ssl
from pathlib import Path

from cryptography import x509

from core import pki
from core.lab.cluster import Lab
from core.lab.org_ca import ExampleOrgCA
from tests.rotation_support import edit_inventory

OrgCA = ExampleOrgCA  # the organisation (or public) CA a UI certificate comes from


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
