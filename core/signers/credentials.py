"""The secrets a signer needs: an encrypted CA key's passphrase, a token's PIN.

They live in this process's memory only. Scripts give them with an environment variable
(CERTROTATE_CA_KEY_PASSPHRASE, CERTROTATE_PKCS11_PIN) or a file named on the command line;
the wizard asks for them in a password field and hands them here. Nothing in this module
writes them anywhere, and no message it makes contains them.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from core import files
from core.errors import BadInput

PASSPHRASE = "passphrase"
PIN = "pin"
ENVIRONMENT = {PASSPHRASE: "CERTROTATE_CA_KEY_PASSPHRASE", PIN: "CERTROTATE_PKCS11_PIN"}

_given: dict[str, bytes] = {}
_lock = threading.Lock()


def give(secret: str, value: bytes | str) -> None:
    """The operator's answer (the wizard) or a file's content (the command line), for this process only."""
    data = value.encode() if isinstance(value, str) else value
    if not data:
        raise BadInput(f"The {_what(secret)} is empty.")
    with _lock:
        _given[secret] = data


def give_from_file(secret: str, path: Path) -> None:
    """A passphrase or PIN file: its first line, without the line break an editor adds."""
    content = files.read_bytes(path, f"The {_what(secret)} file")
    first = content.splitlines()[0].strip() if content.strip() else b""
    if not first:
        raise BadInput(f"The {_what(secret)} file {path} is empty.")
    give(secret, first)


def get(secret: str) -> bytes | None:
    """What was given in this process, else the environment variable, else None."""
    with _lock:
        if secret in _given:
            return _given[secret]
    value = os.environ.get(ENVIRONMENT[secret])
    return value.encode() if value else None


def forget(secret: str | None = None) -> None:
    """Drop what was given (a wrong answer, the wizard closing)."""
    with _lock:
        if secret is None:
            _given.clear()
        else:
            _given.pop(secret, None)


def passphrase() -> bytes | None:
    return get(PASSPHRASE)


def pin() -> bytes | None:
    return get(PIN)


def _what(secret: str) -> str:
    return "CA key passphrase" if secret == PASSPHRASE else "token PIN"
