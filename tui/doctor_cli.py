"""`certrotate doctor`: diagnose a node or a client's certs dir, or explain a client's TLS error.

    certrotate doctor NODE [--state PATH] [--user USER]
    certrotate doctor --certs-dir DIR --user USER --host HOST:PORT [--ca-key FILE] [--p12-password-file FILE]
    certrotate doctor --explain "SSL error: tlsv1 alert unknown ca"

One line per finding (OK, WARN, FAIL, SKIP); exit 0 all fine, 1 a warning, 2 a failure,
like `certrotate check`. `--explain` prints the cause and the fix; it exits 1 when it does
not recognise the error.

As every subcommand's module (tui/cli.py): the parser needs nothing of the doctor; the
handler imports it (and the SSH stack, for a node) when it runs.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from core.errors import BadInput


def _explain(text: str) -> int:
    from core.diagnose import doctor

    explanation = doctor.explain(text)
    print(f"cause: {explanation.cause}")
    print(f"fix:   {explanation.fix}")
    return 0 if explanation is not doctor.UNKNOWN else 1


def _p12_password(path: str | None) -> bytes | None:
    """The PKCS#12 password from a file (trailing newline dropped); it is never printed."""
    if path is None:
        return None
    from core import files

    return files.read_bytes(Path(path), "The PKCS#12 password file").rstrip(b"\r\n")


def _doctor(args: argparse.Namespace) -> int:
    if args.explain is not None:
        return _explain(args.explain)
    from core import pki
    from core.diagnose import doctor

    warn_days = doctor.DEFAULT_WARN_DAYS if args.warn_days is None else args.warn_days
    now = pki.utcnow()
    if args.certs_dir:
        if args.node:
            raise BadInput("Give either a node name or --certs-dir, not both.")
        if not args.host and not args.user:
            raise BadInput("With --certs-dir, give --host HOST:PORT (the node the client connects to) and/or --user USER.")
        findings = doctor.doctor_certs_dir(
            Path(args.certs_dir), args.user, args.host, now=now, warn_days=warn_days,
            ca_key=Path(args.ca_key) if args.ca_key else None, p12_password=_p12_password(args.p12_password_file),
        )
    else:
        if not args.node:
            raise BadInput("Name a node of the state file (certrotate doctor NODE), or give --certs-dir DIR.")
        from core.config import state as state_mod
        from core.remote import remote_files
        from core.remote.ssh import SshPool

        state = state_mod.load(Path(args.state))
        node = state.inventory.node(args.node)
        cluster = state.inventory.cluster
        with SshPool() as pool:
            def read_remote(target, path: str) -> bytes:
                return remote_files.read_file(pool.session(target, state.base_dir), path)

            findings = doctor.doctor_node(
                node, state.base_dir, cluster.local_certs_dir, cluster.ca_key, now=now, warn_days=warn_days,
                user=args.user, read_remote=None if args.no_ssh else read_remote,
            )
    for finding in findings:
        print(finding.line)
    return doctor.exit_code(findings)


def register(subparsers: argparse._SubParsersAction, state_parent: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "doctor", parents=[state_parent],
        help="diagnose a node or a client's certs dir (exit 0 ok, 1 warning, 2 failure), or explain a TLS error",
    )
    parser.add_argument("node", nargs="?", help="a node of the state file")
    parser.add_argument("--certs-dir", help="a client's certs dir (ca.crt, client.<user>.crt/.key) instead of a node")
    parser.add_argument("--user", help="also check client.<user>.crt/.key (in --certs-dir, or the local certs dir)")
    parser.add_argument("--host", help="HOST:PORT the client connects to (with --certs-dir)")
    parser.add_argument("--ca-key", help="with --certs-dir: the CA key, to check that the node trusts that CA")
    parser.add_argument("--p12-password-file", help="with --certs-dir: the file holding client.<user>.p12's password")
    parser.add_argument("--warn-days", type=int, help="warn on expiry within N days")  # default: the doctor's
    parser.add_argument("--no-ssh", action="store_true", help="do not read node.crt over SSH")
    parser.add_argument("--explain", metavar="ERROR", help="explain a client's TLS error message: cause and fix")
    parser.set_defaults(handler=_doctor)
