"""An organisation's CA server for the lab: Debian's `cfssl serve` with an authenticated sign endpoint.

    server = CfsslServer(directory, "127.A.B.250", 8888, org_ca)   # org_ca: pki.Issued
    server.start(); server.url; server.auth_key_hex
    server.switch_ca(new_ca)                                    # the organisation rotated its CA
    server.stop()                                               # by pid

Its profiles `node` (server auth + client auth) and `client` (client auth) require the HMAC
key (`auth_keys`), so only the authsign endpoint signs, as an organisation would set it up.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import shutil
import socket
import subprocess
import time
from pathlib import Path

from core import pki
from core.errors import CertRotateError
from core.files import write_private, write_public
from core.lab.procs import log_tail, stop_pid, track_running, untrack_running

CFSSL = "cfssl"
AUTH_KEY_NAME = "certrotate"
NODE_USAGES = ["signing", "key encipherment", "server auth", "client auth"]
CLIENT_USAGES = ["signing", "key encipherment", "client auth"]


def available() -> bool:
    return shutil.which(CFSSL) is not None


class CfsslServer:
    def __init__(self, directory: Path, address: str, port: int, ca: pki.Issued, *, expiry: str = "8760h"):
        self.directory = Path(directory)
        self.address, self.port = address, port
        self.ca = ca
        self.expiry = expiry
        self.auth_key_hex = secrets.token_hex(16)
        self.log_path = self.directory / "cfssl.log"
        self._process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://{self.address}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None and self._process.poll() is None else None

    def _write_config(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        profile = {"expiry": self.expiry, "auth_key": AUTH_KEY_NAME}
        config = {
            "signing": {
                "default": {**profile, "usages": NODE_USAGES},
                "profiles": {"node": {**profile, "usages": NODE_USAGES}, "client": {**profile, "usages": CLIENT_USAGES}},
            },
            "auth_keys": {AUTH_KEY_NAME: {"type": "standard", "key": self.auth_key_hex}},
        }
        write_private(self.directory / "config.json", json.dumps(config).encode(), overwrite=True)
        write_public(self.directory / "ca.pem", self.ca.cert_pem, overwrite=True)
        write_private(self.directory / "ca-key.pem", self.ca.key_pem(), overwrite=True)

    def start(self, timeout: float = 20.0) -> None:
        self._write_config()
        argv = [CFSSL, "serve", "-address", self.address, "-port", str(self.port), "-ca", "ca.pem",
                "-ca-key", "ca-key.pem", "-config", "config.json"]
        track_running(self)
        with open(self.log_path, "ab") as log:
            self._process = subprocess.Popen(argv, cwd=self.directory, stdin=subprocess.DEVNULL, stdout=log,
                                             stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while not self._answers():
            if self._process.poll() is not None or time.monotonic() >= deadline:
                self.stop()
                raise CertRotateError(f"cfssl serve on {self.url} did not start: {log_tail(self.log_path)}")
            time.sleep(0.05)

    def _answers(self) -> bool:
        with contextlib.suppress(OSError):
            with socket.create_connection((self.address, self.port), timeout=0.5):
                return True
        return False

    def switch_ca(self, ca: pki.Issued) -> None:
        """The organisation's CA rotation reaches its CA server: restart it on the new CA."""
        self.stop()
        self.ca = ca
        self.start()

    def stop(self) -> None:
        stop_pid(self.pid, process=self._process)
        self._process = None
        untrack_running(self)
