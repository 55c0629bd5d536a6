"""What certrotate accepts as names, before any certificate or key exists: plain rules, no cryptography.

The inventory checks key types, client user names and client file formats when it reads
the state file, and the wizard reads the state file before its first frame. So these
rules live here, apart from the builder and the key code that load cryptography; those
modules import them from here, and nothing is written twice. The default lifetimes are
here for the same reason: every `certrotate` command line shows them in its help.
"""

from __future__ import annotations

import datetime as dt

from core.errors import BadInput

# cockroach's defaults: --lifetime 87840h (10 × 366 days) for CAs, 43920h for leaves.
CA_LIFETIME = dt.timedelta(hours=87840)
LEAF_LIFETIME = dt.timedelta(hours=43920)

# A key type's name and how it is made: ("rsa", bits) or ("ec", the curve's name in cryptography).
# CockroachDB's key parser accepts RSA and ECDSA keys only.
KEY_TYPES: dict[str, tuple[str, int | str]] = {
    "rsa-2048": ("rsa", 2048),
    "rsa-3072": ("rsa", 3072),
    "rsa-4096": ("rsa", 4096),
    "ecdsa-p256": ("ec", "secp256r1"),
    "ecdsa-p384": ("ec", "secp384r1"),
}
DEFAULT_KEY_TYPE = "rsa-2048"

# The files a client's driver reads its identity from (core.pki.client_formats makes them).
FORMATS = ("pem", "pk8", "p12")
DEFAULT_FORMATS = ("pem",)


def check_key_type(key_type: str) -> str:
    if key_type == "ed25519":
        raise BadInput(
            "Key type ed25519 is not supported: CockroachDB's key parser accepts only RSA and "
            "ECDSA keys; choose one of " + ", ".join(KEY_TYPES) + "."
        )
    if key_type not in KEY_TYPES:
        raise BadInput(f"Unknown key type {key_type!r}; choose one of {', '.join(KEY_TYPES)}.")
    return key_type


def key_type_for_rsa_bits(bits: int) -> str:
    """Map `cockroach cert --key-size` onto our key types."""
    name = f"rsa-{bits}"
    if name not in KEY_TYPES:
        raise BadInput(f"--key-size {bits} is not supported; use 2048, 3072 or 4096.")
    return name


def check_user_name(user: str) -> str:
    """A client user name becomes a file name (client.<user>.crt): refuse anything that escapes."""
    if not user:
        raise BadInput("The client user name is empty.")
    if len(user) > 128:
        raise BadInput("The client user name is longer than 128 characters.")
    if "/" in user or "\\" in user or "\x00" in user or ".." in user or user.startswith("."):
        raise BadInput(
            f"User name {user!r} cannot be used: it would make an unsafe file name "
            "(no '/', '\\', '..', NUL or leading dot)."
        )
    if any(ch.isspace() or not ch.isprintable() for ch in user):
        raise BadInput(f"User name {user!r} contains white space or control characters.")
    return user
