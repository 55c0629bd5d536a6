"""Helpers for the signer tests: an encrypted CA key, secrets searched for, verify-full to every node."""

from __future__ import annotations

import re
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from core.files import write_private
from core.lab.cluster import Lab
from core.pki.keys import load_private_key, private_key_pem
from tests.rotation_support import served

PEM_KEY = re.compile(rb"-----BEGIN (?:RSA |EC |ENCRYPTED )?PRIVATE KEY-----.*?-----END (?:RSA |EC |ENCRYPTED )?PRIVATE KEY-----",
                     re.S)


def encrypt_ca_key(lab: Lab, passphrase: bytes) -> None:
    """The lab's plain safe/ca.key rewritten as encrypted PEM, as `cert create-ca --ca-key-passphrase-file` writes it."""
    key = load_private_key(lab.ca_key_path.read_bytes(), "ca.key")
    write_private(lab.ca_key_path, private_key_pem(key, passphrase=passphrase), overwrite=True)


def files_containing(root: Path, needle: bytes) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and needle in p.read_bytes()]


def verify_full_everywhere(lab: Lab, user: str = "root", *, exported: bool = False) -> None:
    """psycopg with sslmode=verify-full and a client certificate to every node: a real query answers.

    `exported`: with the files the rotation exported for `user` (after a CA rotation the
    operator's own client.<user>.crt is from the retired CA)."""
    from core.lab.postgres import connect_tls

    certs = lab.local_certs_dir / "export" / user if exported else lab.local_certs_dir
    for node in lab.nodes:
        with connect_tls(node.address, certs, user, port=node.sql_port) as conn:
            assert conn.execute("select 1").fetchone() == (1,)


def operator_private_keys(root: Path, passphrases: tuple[bytes, ...] = ()) -> list[bytes]:
    """Every private key (DER of its public half) found anywhere under `root`, encrypted ones opened with `passphrases`."""
    found = []
    for path in root.rglob("*"):
        if not path.is_file():
            continue
        for block in PEM_KEY.findall(path.read_bytes()):
            for passphrase in (None, *passphrases):
                try:
                    key = serialization.load_pem_private_key(block, passphrase)
                except (TypeError, ValueError):
                    continue
                found.append(key.public_key().public_bytes(serialization.Encoding.DER,
                                                           serialization.PublicFormat.SubjectPublicKeyInfo))
                break
    return found


def served_public_keys(lab: Lab) -> list[bytes]:
    return [served(lab, node).public_key().public_bytes(serialization.Encoding.DER,
                                                         serialization.PublicFormat.SubjectPublicKeyInfo)
            for node in lab.nodes]
