"""The command line's way to give a signer its secrets: a file, the environment, or a prompt on a terminal.

`--ca-key-passphrase-file` and `--pkcs11-pin-file` read the secret's first line into this
process's memory (core.signers.credentials); CERTROTATE_CA_KEY_PASSPHRASE and
CERTROTATE_PKCS11_PIN work without a flag. On a terminal a missing or wrong secret is
asked for (not echoed); without one it is the error's one sentence and exit 2.

The flags are part of the parser, so this module imports core.signers.credentials only
when a handler applies them (tui/cli.py).
"""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path
from typing import Callable, TypeVar

from core.errors import SecretNeeded

T = TypeVar("T")
ATTEMPTS = 3


def add_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ca-key-passphrase-file", type=Path, metavar="FILE",
                        help="file holding the encrypted CA key's passphrase (or CERTROTATE_CA_KEY_PASSPHRASE)")
    parser.add_argument("--pkcs11-pin-file", type=Path, metavar="FILE",
                        help="file holding the token's PIN (or CERTROTATE_PKCS11_PIN)")


def apply(args: argparse.Namespace) -> None:
    from core.signers import credentials

    if getattr(args, "ca_key_passphrase_file", None):
        credentials.give_from_file(credentials.PASSPHRASE, args.ca_key_passphrase_file)
    if getattr(args, "pkcs11_pin_file", None):
        credentials.give_from_file(credentials.PIN, args.pkcs11_pin_file)


def with_secrets(work: Callable[[], T]) -> T:
    """Run `work`; on a terminal, ask for a missing or wrong passphrase/PIN and run it again."""
    from core.signers import credentials

    for attempt in range(ATTEMPTS):
        try:
            return work()
        except SecretNeeded as needed:
            if attempt == ATTEMPTS - 1 or not sys.stdin.isatty():
                raise
            what = "Passphrase of " + needed.source if needed.secret == credentials.PASSPHRASE else f"PIN of token {needed.source}"
            if needed.wrong:
                print(f"certrotate: {needed}", file=sys.stderr)
            answer = getpass.getpass(f"{what}: ")
            if not answer:
                raise
            credentials.give(needed.secret, answer)
    raise AssertionError("unreachable")
