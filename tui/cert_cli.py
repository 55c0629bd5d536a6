"""`certrotate cert ...`: a drop-in for `cockroach cert` with the same flags and files.

As every subcommand's module (tui/cli.py): the parser needs plain defaults only (the
lifetimes from core.pki.rules); each handler imports the certificate code it runs.
"""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING

from core import pki
from core.durations import format_hours, parse_go_duration
from core.pki.rules import DEFAULT_KEY_TYPE, check_key_type, key_type_for_rsa_bits

if TYPE_CHECKING:
    from core.pki import certs_dir
    from core.tools import cert_commands

DEFAULT_WARN_DAYS = 30


def _common_flags(parser: argparse.ArgumentParser, *, lifetime: dt.timedelta, ca_key: bool = True) -> None:
    parser.add_argument("--certs-dir", default="certs", type=Path, help="certificate directory (default: certs)")
    if ca_key:
        parser.add_argument("--ca-key", required=True, type=Path, help="path to the CA key (kept off the nodes)")
        parser.add_argument(
            "--ca-key-passphrase-file", type=Path, help="file holding the CA key's passphrase (or CERTROTATE_CA_KEY_PASSPHRASE); create-ca encrypts the new key with it"
        )
    parser.add_argument("--key-size", type=int, default=2048, help="RSA key size in bits (default 2048)")
    parser.add_argument("--key-type", help="rsa-2048|rsa-3072|rsa-4096|ecdsa-p256|ecdsa-p384 (overrides --key-size)")
    parser.add_argument(
        "--lifetime", default=format_hours(lifetime), help=f"certificate lifetime, Go duration (default {format_hours(lifetime)})"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace existing files (create-ca: add in front)")


def _options(args: argparse.Namespace) -> cert_commands.CertOptions:
    from core.config.inventory import check_ocsp_url
    from core.signers import credentials
    from core.tools import cert_commands

    key_type = check_key_type(args.key_type) if args.key_type else key_type_for_rsa_bits(args.key_size)
    if getattr(args, "ca_key_passphrase_file", None):
        credentials.give_from_file(credentials.PASSPHRASE, args.ca_key_passphrase_file)
    passphrase = credentials.passphrase()  # the file's, else CERTROTATE_CA_KEY_PASSPHRASE
    return cert_commands.CertOptions(
        certs_dir=args.certs_dir,
        ca_key=args.ca_key,
        key_type=key_type or DEFAULT_KEY_TYPE,
        lifetime=parse_go_duration(args.lifetime),
        overwrite=args.overwrite,
        ca_key_passphrase=passphrase,
        ocsp_url=check_ocsp_url(args.ocsp_url) if getattr(args, "ocsp_url", None) else None,
    )


def _report(paths: list[Path]) -> int:
    for path in paths:
        print(f"wrote {path}")
    return 0


def _create_ca(args: argparse.Namespace) -> int:
    from core.tools import cert_commands

    return _report(cert_commands.create_ca(_options(args), allow_ca_key_reuse=args.allow_ca_key_reuse))


def _create_client_ca(args: argparse.Namespace) -> int:
    from core.tools import cert_commands

    return _report(cert_commands.create_ca(_options(args), allow_ca_key_reuse=args.allow_ca_key_reuse, client=True))


def _create_node(args: argparse.Namespace) -> int:
    from core.tools import cert_commands

    return _report(cert_commands.create_node(_options(args), args.hosts))


def _create_client(args: argparse.Namespace) -> int:
    from core.tools import cert_commands

    return _report(cert_commands.create_client(_options(args), args.user, pkcs8=args.also_generate_pkcs8_key))


def format_listing(directory: Path, listings: list[certs_dir.CertListing], now: dt.datetime, warn_days: int) -> str:
    header = ("Usage", "Certificate File", "Key File", "Expires", "Notes", "Error")
    rows = []
    for item in listings:
        flag = item.expiry_flag(now, warn_days)
        notes = ", ".join(part for part in (item.notes, flag) if part)
        expires = f"{item.expires:%Y/%m/%d}" if item.expires else ""
        rows.append((item.usage, item.cert_file, item.key_file, expires, notes, item.error))
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    def line(row: tuple[str, ...]) -> str:
        return " | ".join(str(cell).ljust(widths[i]) for i, cell in enumerate(row)).rstrip()
    out = [f"Certificate directory: {directory}", line(header), "-+-".join("-" * w for w in widths)]
    out += [line(row) for row in rows]
    return "\n".join(out)


def _list(args: argparse.Namespace) -> int:
    from core.pki import certs_dir

    now = pki.utcnow()
    listings = certs_dir.list_certs_dir(args.certs_dir)
    print(format_listing(args.certs_dir, listings, now, args.warn_days))
    expired = [item for item in listings if item.expires and item.expires <= now]
    return 1 if expired or any(item.error for item in listings) else 0


def register(subparsers: argparse._SubParsersAction) -> None:
    cert = subparsers.add_parser("cert", help="create and list certificates (drop-in for `cockroach cert`)")
    commands = cert.add_subparsers(dest="cert_command", required=True, metavar="COMMAND")

    create_ca = commands.add_parser("create-ca", help="create a CA certificate and key (prepends with --overwrite)")
    _common_flags(create_ca, lifetime=pki.CA_LIFETIME)
    create_ca.add_argument("--allow-ca-key-reuse", action="store_true", help="use an existing CA key")
    create_ca.set_defaults(handler=_create_ca)

    create_client_ca = commands.add_parser("create-client-ca", help="create a client CA (ca-client.crt)")
    _common_flags(create_client_ca, lifetime=pki.CA_LIFETIME)
    create_client_ca.add_argument("--allow-ca-key-reuse", action="store_true", help="use an existing CA key")
    create_client_ca.set_defaults(handler=_create_client_ca)

    create_node = commands.add_parser("create-node", help="create node.crt/node.key for the given hosts")
    _common_flags(create_node, lifetime=pki.LEAF_LIFETIME)
    create_node.add_argument("hosts", nargs="+", help="DNS names and IP addresses of the node")
    create_node.add_argument("--ocsp-url", help="OCSP responder URL written into the certificate (AIA)")
    create_node.set_defaults(handler=_create_node)

    create_client = commands.add_parser("create-client", help="create client.<user>.crt/.key")
    _common_flags(create_client, lifetime=pki.LEAF_LIFETIME)
    create_client.add_argument("user", help="SQL user name (certificate CN)")
    create_client.add_argument("--ocsp-url", help="OCSP responder URL written into the certificate (AIA)")
    create_client.add_argument(
        "--also-generate-pkcs8-key", action="store_true", help="also write client.<user>.key.pk8 (DER PKCS#8)"
    )
    create_client.set_defaults(handler=_create_client)

    listing = commands.add_parser("list", help="list certificates and keys in the certs dir")
    listing.add_argument("--certs-dir", default="certs", type=Path, help="certificate directory (default: certs)")
    listing.add_argument("--warn-days", type=int, default=DEFAULT_WARN_DAYS, help="flag expiry within N days")
    listing.set_defaults(handler=_list)
