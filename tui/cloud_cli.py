"""`certrotate cloud ...`: TLS material for CockroachDB Cloud and for services CockroachDB talks TLS to.

    certrotate cloud changefeed-uri --ca FILE --cert FILE --key FILE --broker HOST:PORT [--topic-prefix P]
    certrotate cloud client-ca --dir DIR [--key-type T] [--lifetime D] [--cluster-id ID]
    certrotate cloud client-ca --dir DIR --retire FINGERPRINT | --drop-expired [--cluster-id ID]
    certrotate cloud client-cert --dir DIR --user NAME [--certs-dir OUT] [--key-type T] [--lifetime D]

client-ca and client-cert print the command that uploads the client CA bundle through the
Cloud API; it names the API key only as an environment variable, never its value.

The URI holds the client's private key by design (it is pasted into CREATE CHANGEFEED):
it goes to stdout only, and a warning saying so goes to stderr.

As every subcommand's module (tui/cli.py): the parser needs plain defaults only (core.pki.rules);
each handler imports core.tools.cloud when it runs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from core import pki
from core.durations import format_hours, parse_go_duration
from core.pki.rules import DEFAULT_KEY_TYPE, check_key_type

if TYPE_CHECKING:
    from core.tools import cloud


def _changefeed_uri(args: argparse.Namespace) -> int:
    from core.files import read_bytes
    from core.tools import cloud

    uri = cloud.changefeed_uri(
        args.broker,
        ca_pem=read_bytes(Path(args.ca), "CA file"),
        cert_pem=read_bytes(Path(args.cert), "Client certificate"),
        key_pem=read_bytes(Path(args.key), "Client key"),
        topic_prefix=args.topic_prefix,
        ca_source=args.ca,
        cert_source=args.cert,
        key_source=args.key,
    )
    print(
        f"certrotate: warning: this URI contains the private key {args.key}; paste it into CREATE CHANGEFEED "
        "and keep it out of shell history, tickets and logs.",
        file=sys.stderr,
    )
    print(uri)
    return 0


def _client_ca_table(state: cloud.ClientCaDir, now) -> list[str]:
    lines = []
    for index, ca in enumerate(state.cas):
        role = "newest: signs client certificates" if index == 0 else "kept for the transition"
        if ca.expired(now):
            role = "EXPIRED"
        lines.append(f"  {ca.short}  expires {ca.not_after:%Y-%m-%d}  {role}")
    return lines


def _print_upload(state: cloud.ClientCaDir, cluster_id: str | None, *, first_time: bool) -> None:
    from core.tools import cloud

    print(f"Upload {state.bundle_path} to the cluster (Cloud API; the key is read from ${cloud.API_KEY_VARIABLE}):")
    print(cloud.upload_command(state.bundle_path, cluster_id, first_time=first_time))
    other = "PATCH" if first_time else "POST"
    when = "already has a client CA" if first_time else "has no client CA yet"
    print(f"(If the cluster {when}, use --request {other}.)")


def _client_ca(args: argparse.Namespace) -> int:
    from core.tools import cloud

    now = pki.utcnow()
    cluster_id = cloud.check_cluster_id(args.cluster_id) if args.cluster_id else None
    current = cloud.read_client_ca_dir(args.dir)
    if args.retire or args.drop_expired:
        if args.retire:
            change = cloud.retire_client_ca(current, args.retire)
        else:
            change = cloud.drop_expired_client_cas(current, now)
        if not change.dropped:
            print(f"No client CA in {current.bundle_path} has expired; nothing to change.")
            return 0
        cloud.save_change(args.dir, change.writes, change.deletes)
        for ca in change.dropped:
            print(f"Removed client CA {ca.short} (expires {ca.not_after:%Y-%m-%d}) from {current.bundle_path}"
                  + ("; its key was deleted." if ca.key_path else "."))
        first_time = False
    else:
        key_type = check_key_type(args.key_type)
        change = cloud.new_client_ca(current, key_type=key_type, lifetime=parse_go_duration(args.lifetime), now=now)
        cloud.save_change(args.dir, change.writes, change.deletes)
        created = change.created
        assert created is not None
        print(f"Created client CA {created.short} (expires {created.not_after:%Y-%m-%d}): "
              f"{args.dir / cloud.CLIENT_CA_SUBDIR / (created.short + '.crt')}, key {created.key_path} (0600).")
        for ca in change.dropped:
            print(f"Left out the expired client CA {ca.short} (expired {ca.not_after:%Y-%m-%d}).")
        first_time = not current.cas
    after = change.after
    print(f"{after.bundle_path} holds {len(after.cas)} client CA(s), newest first:")
    print("\n".join(_client_ca_table(after, now)))
    _print_upload(after, cluster_id, first_time=first_time)
    older = [ca for ca in after.cas[1:]]
    if older:
        print("Once every client uses a certificate from the newest CA, retire the older one(s) and upload again:")
        for ca in older:
            print(f"  certrotate cloud client-ca --dir {args.dir} --retire {ca.short}")
    return 0


def _client_cert(args: argparse.Namespace) -> int:
    from core.tools import cloud

    now = pki.utcnow()
    cluster_id = cloud.check_cluster_id(args.cluster_id) if args.cluster_id else None
    pki.check_user_name(args.user)
    current = cloud.read_client_ca_dir(args.dir)
    ca = cloud.signing_client_ca(current)
    planned = cloud.new_client_cert(ca, args.user, key_type=check_key_type(args.key_type),
                                    lifetime=parse_go_duration(args.lifetime), now=now)
    out = args.certs_dir or args.dir
    for path in cloud.save_change(out, planned, overwrite=args.overwrite):
        print(f"wrote {path}")
    print(f"Signed by client CA {current.newest.short}; the cluster accepts it once it has {current.bundle_path}.")
    _print_upload(current, cluster_id, first_time=False)
    return 0


def _client_ca_flags(parser: argparse.ArgumentParser, lifetime) -> None:
    parser.add_argument("--dir", required=True, type=Path, help="the client-CA directory (bundle, CAs and their keys)")
    parser.add_argument("--key-type", default=DEFAULT_KEY_TYPE,
                        help=f"rsa-2048|rsa-3072|rsa-4096|ecdsa-p256|ecdsa-p384 (default {DEFAULT_KEY_TYPE})")
    parser.add_argument("--lifetime", default=format_hours(lifetime),
                        help=f"lifetime, Go duration (default {format_hours(lifetime)})")
    parser.add_argument("--cluster-id", help="the Cloud cluster's ID, filled into the printed upload command")


def register(subparsers: argparse._SubParsersAction) -> None:
    cloud_parser = subparsers.add_parser(
        "cloud", help="CockroachDB Cloud: changefeed sink URIs, the client CA you upload, client certificates from it",
        description="changefeed-uri: a kafka:// sink URI with the TLS files inline; client-ca: create or rotate the "
                    "client CA of a Cloud cluster and print the upload command; client-cert: issue a client "
                    "certificate from the newest client CA.")
    commands = cloud_parser.add_subparsers(dest="cloud_command", required=True, metavar="COMMAND")
    uri = commands.add_parser(
        "changefeed-uri", help="a kafka:// sink URI with the CA, client certificate and key inline (base64)"
    )
    uri.add_argument("--ca", required=True, help="CA certificate(s) of the Kafka brokers (PEM)")
    uri.add_argument("--cert", required=True, help="client certificate for the brokers (PEM)")
    uri.add_argument("--key", required=True, help="its private key (PEM, unencrypted); ends up in the URI")
    uri.add_argument("--broker", required=True, help="HOST:PORT of a Kafka broker")
    uri.add_argument("--topic-prefix", help="prefix of the topic names the changefeed writes")
    uri.set_defaults(handler=_changefeed_uri)

    client_ca = commands.add_parser(
        "client-ca", help="create (or rotate) the client CA of a Cloud cluster; print the command that uploads its bundle"
    )
    _client_ca_flags(client_ca, pki.CA_LIFETIME)
    retire = client_ca.add_mutually_exclusive_group()
    retire.add_argument("--retire", metavar="FINGERPRINT", help="remove this old client CA from the bundle (and its key)")
    retire.add_argument("--drop-expired", action="store_true", help="remove every expired client CA from the bundle")
    client_ca.set_defaults(handler=_client_ca)

    client_cert = commands.add_parser("client-cert", help="issue client.NAME.crt/.key from the newest client CA")
    _client_ca_flags(client_cert, pki.LEAF_LIFETIME)
    client_cert.add_argument("--user", required=True, help="SQL user: the certificate's CN")
    client_cert.add_argument("--certs-dir", type=Path, help="where client.NAME.crt/.key go (default: --dir)")
    client_cert.add_argument("--overwrite", action="store_true", help="replace an existing client.NAME.crt/.key")
    client_cert.set_defaults(handler=_client_cert)
