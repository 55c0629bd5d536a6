"""Certificates as values: the builder, keys, bundles, certs-dir names and the checks a node makes.

Nothing in this package opens a socket or an SSH session; it takes bytes and returns
bytes or certificate objects. `core.pki` itself is the builder's API (`pki.issue_node`,
`pki.utcnow`, ...); the other modules are imported by name (`core.pki.bundle`, ...).

The builder loads cryptography, which costs the wizard a visible part of its start-up, and
the wizard's first screen needs no certificate. So this facade loads it on first use
(PEP 562: a name looked up here imports the module that defines it); `from core.pki import
issue_node` and `pki.issue_node(...)` work as with an eager import. The rules that need no
cryptography (key types, user names, client formats, the default lifetimes) are in
`core.pki.rules`.
"""

from __future__ import annotations

import importlib
from typing import Any

_BUILDER = (
    "BACKDATE", "CA_PROFILE", "CLIENT_CA_PROFILE", "CLIENT_PROFILE", "NODE_PROFILE", "NODE_PROFILES", "NODE_USER",
    "ORGANIZATION", "SPLIT_NODE_PROFILE", "Issued", "Profile", "build_certificate", "common_name", "is_ca_certificate",
    "issue_ca", "issue_client", "issue_node", "random_serial", "san_strings", "sha256_fingerprint",
    "subject_alternative_names", "utcnow",
)
# Where each name of the facade is defined.
_HOME = {**dict.fromkeys(_BUILDER, "core.pki.builder"), "generate_private_key": "core.pki.keys",
         **dict.fromkeys(("CA_LIFETIME", "LEAF_LIFETIME", "check_user_name"), "core.pki.rules")}

__all__ = sorted(_HOME)


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:  # not ours: `from core.pki import bundle` then imports the submodule
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value  # looked up once
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_HOME))
