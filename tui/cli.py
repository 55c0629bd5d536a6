"""The `certrotate` command line: parse, call core, print, exit with the codes docs/cli.md lists.

`certrotate` alone opens the wizard without building a parser (argparse is not even
imported); `certrotate --state FILE` is parsed with a parser of that one flag. So the
wizard's first frame waits for no subcommand's module; anything else gets the full parser,
built from every subcommand's module.

Each process runs one subcommand, so it imports only what that one needs. Every subcommand's
module (`tui/*_cli.py`) keeps to one rule: at its top it imports only what its parser needs
(the standard library, core.errors and plain data: the kinds registry, default values from
core.pki.rules, core.durations, core.config.autopilot_policy); each handler imports the core
machinery it calls, where it runs. So the full parser loads no engine, SSH stack, doctor,
autopilot, cert tools or cryptography; `certrotate start ca` loads no paramiko
(core.rotation.opening), and `advance` none of the doctor, autopilot or cert tools.
tests/test_cli_startup.py checks this on the real processes.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from core.errors import CertRotateError

if TYPE_CHECKING:
    import argparse

DEFAULT_STATE = "certrotate.toml"
STATE_HELP = "state file (default ./certrotate.toml)"


def wizard_parser() -> argparse.ArgumentParser:
    """The command line that opens the wizard: no subcommand, at most --state."""
    import argparse

    parser = argparse.ArgumentParser(prog="certrotate", add_help=False, exit_on_error=False)
    parser.add_argument("--state", default=DEFAULT_STATE, help=STATE_HELP)
    return parser


def build_parser() -> argparse.ArgumentParser:
    import argparse

    from tui import autopilot_cli, cert_cli, cloud_cli, doctor_cli, rotation_cli

    state_parent = argparse.ArgumentParser(add_help=False)
    state_parent.add_argument("--state", default=argparse.SUPPRESS, help=STATE_HELP)
    parser = argparse.ArgumentParser(prog="certrotate", description="Zero-downtime TLS certificate rotation.")
    parser.add_argument("--state", default=DEFAULT_STATE, help=STATE_HELP)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    rotation_cli.register(subparsers, state_parent)
    autopilot_cli.register(subparsers, state_parent)
    cert_cli.register(subparsers)
    doctor_cli.register(subparsers, state_parent)
    cloud_cli.register(subparsers)
    demo = subparsers.add_parser("demo", help="rehearsal cluster on loopback, with the wizard opened on it")
    demo.add_argument("--nodes", type=int, default=3, help="number of nodes (default 3)")
    demo.add_argument("--expired", action="store_true",
                      help="a cluster whose CA and every certificate expired 12 hours ago, to rehearse recovery")
    demo.set_defaults(handler=_demo)
    return parser


def _wizard(state: str) -> int:
    """Open the wizard on the state file (the first-run forms when it does not exist yet)."""
    from tui import startup_gc

    startup_gc.pause()  # for the imports too; the app turns it back on at its first frame
    try:
        return _open_wizard(state)
    finally:
        startup_gc.resume()


def _open_wizard(state: str) -> int:
    from pathlib import Path

    from tui.app import CertRotateApp
    from tui.terminal import require_terminal

    require_terminal()
    app = CertRotateApp(Path(state))
    # Another certrotate on this file (exit 3) or a damaged file (exit 2) is one sentence before the screen is
    # taken over; the file is read once, under the lock, and the wizard opens on what was read.
    app.acquire_lock()
    try:
        app.load_state()
        app.run()
    finally:
        app.release_lock()
    return app.return_code or 0


def _demo(args: argparse.Namespace) -> int:
    from tui.demo import run_demo
    from tui.terminal import require_terminal

    require_terminal()  # before a cluster is started that nobody could see or stop

    return run_demo(args.nodes, expired=args.expired)


def _parse(argv: list[str]) -> argparse.Namespace:
    import argparse

    try:
        args, rest = wizard_parser().parse_known_args(argv)
    except argparse.ArgumentError:  # e.g. --state without a file: the full parser words it, with the full usage
        rest = argv
    if rest:  # a subcommand, --help, or something to refuse: the full parser says which
        args = build_parser().parse_args(argv)
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = _parse(argv) if argv else None  # `certrotate` alone: the wizard, no parser built
    try:
        handler = getattr(args, "handler", None)
        if handler is None:
            return _wizard(args.state if args else DEFAULT_STATE)
        return int(handler(args) or 0)
    except CertRotateError as error:
        print(f"certrotate: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("certrotate: interrupted.", file=sys.stderr)
        return 130
