"""`certrotate autopilot` (one pass, for a timer), `autopilot install`, and `check --format prometheus|json`.

Exit codes of a pass, like `check`: 0 nothing needs a person (nothing due, progressed, finished, waiting
for a date or for the window), 1 a person is needed (a confirmation, a failed step, a notification that
did not arrive, a rotation that cannot start), 2 critical (a certificate that cannot be rotated expires
within 7 days) or bad input, 3 another certrotate holds the state file's lock.

As every subcommand's module (tui/cli.py): the parser needs plain defaults only; each
handler imports the autopilot machinery it runs.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from core.config.autopilot_policy import DEFAULT_JITTER_SECONDS
from core.errors import BadInput

if TYPE_CHECKING:
    from core.config.state import State


def _require_policy(state: State, path: Path):
    if state.policy is None:
        raise BadInput(f"{path} has no [autopilot] table; add one (e.g. windows = [\"0 2-4 * * 1-5\"] and notify = "
                       "[\"webhook:https://…\"]) to say when autopilot may change nodes and whom it tells.")
    return state.policy


def program() -> list[str]:
    """How a timer calls this certrotate: the console script beside this interpreter, else `python -m tui`."""
    script = Path(sys.executable).parent / "certrotate"
    return [str(script.absolute())] if script.exists() else [str(Path(sys.executable).absolute()), "-m", "tui"]


def _autopilot(args: argparse.Namespace) -> int:
    import time

    from core import pki
    from core.autopilot import notify, windows
    from core.config import state as state_mod
    from tui.rotation_cli import parse_now

    if getattr(args, "autopilot_action", None) == "install":
        return _install(args)
    path = Path(args.state)
    clock = parse_now(args.now)
    if args.jitter < 0:
        raise BadInput("--jitter must be a number of seconds, 0 or more.")
    state = state_mod.load(path)
    policy = _require_policy(state, path)
    notify.check_apprise_targets(policy.targets, str(path))
    if args.jitter and clock is None and not args.dry_run:
        now = pki.utcnow()
        delay = windows.jitter_seconds(args.jitter, windows.at(policy.windows, policy.minutes, now), now)
        if delay:
            print(f"inside the maintenance window; starting in {delay:.0f} s (--jitter {args.jitter}).", flush=True)
            time.sleep(delay)
    return _one_pass(path, clock, args.dry_run)


def _one_pass(path: Path, clock, dry_run: bool) -> int:
    from core import pki
    from core.autopilot.pilot import run_pass
    from core.config import state as state_mod
    from core.remote.ssh import SshPool
    from tui.rotation_cli import print_progress

    with state_mod.locked(path):
        state = state_mod.load(path)
        policy = _require_policy(state, path)
        now = clock or pki.utcnow()
        with SshPool() as pool:
            outcome = run_pass(state, pool, policy, now=now, dry_run=dry_run, report=print_progress)
    for line in outcome.lines:
        print(line)
    if dry_run:
        for event in outcome.events:
            print(f"would notify: {event.event} — {event.summary}")
    for line in outcome.notified:
        print(f"notified: {line}")
    if outcome.events and not state.policy.notify:
        print("nobody was notified: [autopilot] notify is empty.")
    for failure in outcome.notify_failures:
        print(f"certrotate: {failure}", file=sys.stderr)
    return outcome.exit_code


def _install(args: argparse.Namespace) -> int:
    import getpass

    from core import files
    from core.autopilot import install
    from core.config import state as state_mod

    path = Path(args.state).absolute()
    state = state_mod.load(path)
    _require_policy(state, path)
    cluster = state.inventory.cluster.name
    argv = install.command(program(), path, args.jitter if args.jitter is not None else DEFAULT_JITTER_SECONDS)
    user = args.run_as or getpass.getuser()
    if args.systemd:
        units = install.systemd_units(cluster, argv, path, user=None if args.user else user)
        directory = args.write or ("~/.config/systemd/user" if args.user else "/etc/systemd/system")
        if args.write:
            target = Path(args.write)
            if not target.is_dir():
                raise BadInput(f"--write {args.write} is not a directory; give the directory the units go in.")
            for name, content in units.items():
                files.write_public(target / name, content.encode(), overwrite=True)
                print(f"wrote {target / name}")
        else:
            for name, content in units.items():
                print(f"# --- {name}\n{content}")
        print(install.systemd_howto(cluster, directory, args.user))
        return 0
    if args.write:
        target = Path(args.write)
        files.write_public(target, install.cron_d_file(argv, user, cluster).encode(), overwrite=True)
        print(f"wrote {target}: cron runs autopilot as {user} every {install.EVERY_MINUTES} minutes "
              "(a file in /etc/cron.d needs no further step).")
        return 0
    print(install.crontab_line(argv))
    print(f"# Add the line above with `crontab -e` as {user}; cron mails what each pass prints.\n"
          f"# For /etc/cron.d instead: certrotate autopilot install --cron --write /etc/cron.d/"
          f"{install.unit_name(cluster)}")
    return 0


# -- check --format prometheus|json ---------------------------------------------------------------


def _certs_dir_expiries(directory: Path):
    from core.autopilot.decide import CertExpiry
    from core.pki.builder import sha256_fingerprint
    from core.pki.certs_dir import list_certs_dir

    out = []
    for item in list_certs_dir(directory):
        is_ca = item.cert_file.startswith("ca")
        for index, cert in enumerate(item.certificates):
            role = ("ca" if index == 0 else "old-ca") if is_ca else "leaf"
            out.append(CertExpiry(f"ca-{index + 1}" if is_ca and index else ("ca" if is_ca else ""), role,
                                  item.cert_file, cert.not_valid_after_utc, sha256_fingerprint(cert)))
    return out


def print_check(args: argparse.Namespace, findings, exit_code: int) -> None:
    """`check --format prometheus|json`: the findings and every certificate's expiry, for monitoring."""
    from core.autopilot import metrics, observe
    from core.config import state as state_mod

    if args.certs_dir:
        state, cluster, expiries = None, "", _certs_dir_expiries(Path(args.certs_dir))
    else:
        state = state_mod.load(Path(args.state))
        cluster, expiries = state.inventory.cluster.name, observe.expiries(state)
    if args.format == "prometheus":
        sys.stdout.write(metrics.prometheus_text(cluster, state, expiries, findings, exit_code).decode())
    else:
        print(json.dumps(metrics.json_report(cluster, state, expiries, findings, exit_code), indent=2))


def register(subparsers: argparse._SubParsersAction, state_parent: argparse.ArgumentParser) -> None:
    autopilot = subparsers.add_parser(
        "autopilot", parents=[state_parent],
        help="one pass for a timer: start what is due, advance what is ready, inside maintenance windows")
    autopilot.add_argument("--now", help="the clock the pass runs by (ISO 8601; rehearsal and tests)")
    autopilot.add_argument("--dry-run", action="store_true", help="say what the pass would do; change and send nothing")
    autopilot.add_argument("--jitter", type=int, default=0, metavar="SECONDS",
                           help="inside an open window, first wait a random time up to this (the installed timer "
                                "uses it); ignored with --now and --dry-run")
    autopilot.set_defaults(handler=_autopilot)
    actions = autopilot.add_subparsers(dest="autopilot_action", metavar="install")
    setup = actions.add_parser("install", parents=[state_parent],
                               help="print (or write) the systemd units or the crontab line that run autopilot")
    kind = setup.add_mutually_exclusive_group(required=True)
    kind.add_argument("--systemd", action="store_true", help="a .service and a .timer")
    kind.add_argument("--cron", action="store_true", help="a crontab line")
    setup.add_argument("--user", action="store_true", help="systemd: a user unit (systemctl --user) instead of a system one")
    setup.add_argument("--run-as", metavar="USER", help="the account it runs as (default: you)")
    setup.add_argument("--write", metavar="PATH", help="systemd: the directory for the units; cron: a /etc/cron.d file")
    setup.add_argument("--jitter", type=int, default=None, metavar="SECONDS",
                       help=f"the random delay inside a window (default {DEFAULT_JITTER_SECONDS})")
    setup.set_defaults(handler=_autopilot)
