"""`certrotate cloud ...`: connection strings for services CockroachDB itself talks TLS to.

    certrotate cloud changefeed-uri --ca FILE --cert FILE --key FILE --broker HOST:PORT [--topic-prefix P]

The URI holds the client's private key by design (it is pasted into CREATE CHANGEFEED):
it goes to stdout only, and a warning saying so goes to stderr.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from core import cloud
from core.files import read_bytes


def _changefeed_uri(args: argparse.Namespace) -> int:
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


def register(subparsers: argparse._SubParsersAction) -> None:
    cloud_parser = subparsers.add_parser("cloud", help="connection strings for CockroachDB's outbound TLS (changefeeds)")
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
