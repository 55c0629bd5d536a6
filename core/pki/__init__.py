"""Certificates as values: the builder, keys, bundles, certs-dir names and the checks a node makes.

Nothing in this package opens a socket or an SSH session; it takes bytes and returns
bytes or certificate objects. `core.pki` itself is the builder's API (`pki.issue_node`,
`pki.utcnow`, ...); the other modules are imported by name (`core.pki.bundle`, ...).
"""

from core.pki.builder import (
    BACKDATE,
    CA_LIFETIME,
    CA_PROFILE,
    CLIENT_CA_PROFILE,
    CLIENT_PROFILE,
    LEAF_LIFETIME,
    NODE_PROFILE,
    NODE_PROFILES,
    NODE_USER,
    ORGANIZATION,
    SPLIT_NODE_PROFILE,
    Issued,
    Profile,
    build_certificate,
    check_user_name,
    common_name,
    is_ca_certificate,
    issue_ca,
    issue_client,
    issue_node,
    random_serial,
    san_strings,
    sha256_fingerprint,
    subject_alternative_names,
    utcnow,
)
from core.pki.keys import generate_private_key

__all__ = [
    "BACKDATE", "CA_LIFETIME", "CA_PROFILE", "CLIENT_CA_PROFILE", "CLIENT_PROFILE", "LEAF_LIFETIME", "NODE_PROFILE",
    "NODE_PROFILES", "NODE_USER", "ORGANIZATION", "SPLIT_NODE_PROFILE", "Issued", "Profile", "build_certificate",
    "check_user_name", "common_name", "generate_private_key", "is_ca_certificate", "issue_ca", "issue_client",
    "issue_node", "random_serial", "san_strings", "sha256_fingerprint", "subject_alternative_names", "utcnow",
]
