"""The `cfssl` signer: the organisation's CA is a CFSSL server; certrotate sends CSRs and gets certificates.

Requests go to the server's authenticated sign endpoint (`/api/v1/cfssl/authsign`): the
signing request is HMAC-SHA256'd with the shared key from `cfssl_auth_key_file` (hex, as in
the server's `auth_keys`), so only holders of that key get certificates. The profile
(`cfssl_node_profile`, `cfssl_client_profile`) is the server's: its usages and expiry are
the organisation's; certrotate checks each answer (core.signers.issue) before using it.
Before the first request of a run the server's CA (`/api/v1/cfssl/info`) is compared with
the CA the rotation expects, so a server still on the old CA is named in one sentence.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import ssl
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509

from core import files, pki
from core.errors import BadInput, StepFailed
from core.signers.paths import resolve_local
from core.signers.request import CaObject, CertificateRequest

TIMEOUT = 30


@dataclass(frozen=True)
class CfsslSettings:
    url: str
    auth_key_file: Path
    node_profile: str
    client_profile: str
    ca_file: Path | None

    @classmethod
    def of(cls, cluster: Any, base_dir: Path) -> "CfsslSettings":
        if not (cluster.cfssl_url and cluster.cfssl_auth_key_file):
            raise BadInput('signer = "cfssl" needs [cluster] cfssl_url and cfssl_auth_key_file.')
        return cls(cluster.cfssl_url.rstrip("/"), resolve_local(cluster.cfssl_auth_key_file, base_dir),
                   cluster.cfssl_node_profile, cluster.cfssl_client_profile,
                   resolve_local(cluster.cfssl_ca_file, base_dir) if cluster.cfssl_ca_file else None)

    def auth_key(self) -> bytes:
        text = files.read_bytes(self.auth_key_file, "The CFSSL auth key file").strip()
        try:
            return bytes.fromhex(text.decode())
        except ValueError:
            raise BadInput(f"{self.auth_key_file} does not hold a hex key (as in the CFSSL server's auth_keys).") from None


class CfsslCA(CaObject):
    """The CA certificate the CFSSL server is expected to sign with."""

    name = "cfssl"

    def __init__(self, settings: CfsslSettings, certificate: x509.Certificate):
        self.settings = settings
        self.certificate = certificate
        self._checked = False
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"CfsslCA({self.settings.url}, {self.fingerprint[:16]}…)"

    def sign(self, request: CertificateRequest) -> x509.Certificate:
        self._check_server_ca()
        profile = self.settings.client_profile if request.profile.kind == "client" else self.settings.node_profile
        signing_request = {
            "certificate_request": request.csr_pem.decode(),
            "hosts": [str(name.value) for name in request.sans],
            "profile": profile,
        }
        body = json.dumps(signing_request).encode()
        token = hmac.new(self.settings.auth_key(), body, hashlib.sha256).digest()
        answer = self._post("authsign", {"token": base64.b64encode(token).decode(),
                                         "request": base64.b64encode(body).decode()}, request.label)
        return _certificate(answer, f"the CFSSL server's answer for {request.label}")

    def _check_server_ca(self) -> None:
        with self._lock:
            if self._checked:
                return
            answer = self._post("info", {"label": "", "profile": self.settings.node_profile}, "its CA")
            served = _certificate(answer, "the CFSSL server's CA")
            if pki.sha256_fingerprint(served) != self.fingerprint:
                raise StepFailed(
                    f"The CFSSL server at {self.settings.url} signs with CA {pki.common_name(served)!r} "
                    f"({pki.sha256_fingerprint(served)[:16]}…), not {pki.common_name(self.certificate)!r} "
                    f"({self.fingerprint[:16]}…) that this rotation needs; switch the server to that CA (or fix "
                    "cfssl_url), then run advance again.")
            self._checked = True

    def _post(self, endpoint: str, payload: dict[str, Any], what: str) -> dict[str, Any]:
        url = f"{self.settings.url}/api/v1/cfssl/{endpoint}"
        context = ssl.create_default_context(cafile=str(self.settings.ca_file) if self.settings.ca_file else None)
        http = urllib.request.Request(url, data=json.dumps(payload).encode(), method="POST",
                                      headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(http, timeout=TIMEOUT, context=context if url.startswith("https") else None) as response:
                data = json.loads(response.read())
        except urllib.error.HTTPError as error:
            data = _json_or_none(error.read())
            if data is None:
                raise StepFailed(f"The CFSSL server at {self.settings.url} refused the request for {what} "
                                 f"(HTTP {error.code}).") from None
        except (urllib.error.URLError, OSError, ValueError) as error:
            reason = getattr(error, "reason", error)
            raise StepFailed(f"The CFSSL server at {self.settings.url} cannot be reached ({reason}); check "
                             "cfssl_url and that the server runs.") from None
        if not data.get("success"):
            messages = "; ".join(str(e.get("message", e)) for e in data.get("errors") or []) or "no reason given"
            raise StepFailed(f"The CFSSL server at {self.settings.url} refused the request for {what}: {messages}.")
        return data.get("result") or {}


def _certificate(result: dict[str, Any], what: str) -> x509.Certificate:
    pem = result.get("certificate")
    if not isinstance(pem, str):
        raise StepFailed(f"{what} holds no certificate.")
    try:
        return x509.load_pem_x509_certificate(pem.encode())
    except ValueError:
        raise StepFailed(f"{what} is not a PEM certificate.") from None


def _json_or_none(data: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(data)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
