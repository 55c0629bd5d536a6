"""The `certrotate` command line: parse, call core, print, exit with the SPEC's codes."""

from __future__ import annotations

import argparse
import sys

from core.errors import CertRotateError

DEFAULT_STATE = "certrotate.toml"
from tui import cert_cli, rotation_cli


def build_parser() -> argparse.ArgumentParser:
    state_parent = argparse.ArgumentParser(add_help=False)
    state_parent.add_argument("--state", default=argparse.SUPPRESS, help="state file (default ./certrotate.toml)")
    parser = argparse.ArgumentParser(prog="certrotate", description="Zero-downtime TLS certificate rotation.")
    parser.add_argument("--state", default=DEFAULT_STATE, help="state file (default ./certrotate.toml)")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    rotation_cli.register(subparsers, state_parent)
    cert_cli.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        handler = getattr(args, "handler", None)
        if handler is None:
            parser.print_help()
            return 0
        return int(handler(args) or 0)
    except CertRotateError as error:
        print(f"certrotate: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("certrotate: interrupted.", file=sys.stderr)
        return 130
