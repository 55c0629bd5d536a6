"""A real PKCS#11 token for the lab: SoftHSM2 with its token store in a directory of its own.

    hsm = SoftHsm(directory)                    # writes softhsm2.conf, tokens/
    hsm.init_token("certrotate", pin="1234")
    hsm.import_key(pem, token="certrotate", label="lab-ca", pin="1234")
    env = hsm.env                               # SOFTHSM2_CONF for a certrotate process

Everything goes through Debian's `softhsm2-util`, as an operator would set a token up.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from core.files import write_private, write_public
from core.pki.keys import load_private_key, private_key_pem

MODULE = "/usr/lib/softhsm/libsofthsm2.so"
UTIL = "softhsm2-util"


def available() -> bool:
    return Path(MODULE).exists()


class SoftHsm:
    def __init__(self, directory: Path):
        self.directory = Path(directory)
        self.tokens = self.directory / "tokens"
        self.tokens.mkdir(parents=True, exist_ok=True)
        os.chmod(self.directory, 0o700)
        self.conf = self.directory / "softhsm2.conf"
        write_public(self.conf, f"directories.tokendir = {self.tokens}\nobjectstore.backend = file\nlog.level = ERROR\n"
                     .encode(), overwrite=True)

    @property
    def env(self) -> dict[str, str]:
        return {"SOFTHSM2_CONF": str(self.conf)}

    def _util(self, *args: str) -> None:
        subprocess.run([UTIL, *args], check=True, capture_output=True, env={**os.environ, **self.env}, timeout=60)

    def init_token(self, label: str, *, pin: str, so_pin: str = "87654321") -> None:
        self._util("--init-token", "--free", "--label", label, "--pin", pin, "--so-pin", so_pin)

    def import_key(self, key_pem: bytes, *, token: str, label: str, pin: str, key_id: str = "01") -> None:
        """Import a key pair (softhsm2-util wants PKCS#8); the PEM file lives only for the import."""
        pkcs8 = private_key_pem(load_private_key(key_pem, "the key to import"), pkcs8=True)
        staging = self.directory / "import.pem"
        write_private(staging, pkcs8, overwrite=True)
        try:
            self._util("--import", str(staging), "--token", token, "--label", label, "--id", key_id, "--pin", pin)
        finally:
            staging.unlink()
