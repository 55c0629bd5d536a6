"""`certrotate status|start|advance|rollback|check`: the engine for scripts, cron and CI.

Exit codes (docs/cli.md): 0 progressed or waiting at a gate, 1 a step failed, 2 bad input,
3 the state file is locked by another certrotate.

As every subcommand's module (tui/cli.py): the parser needs only the kinds registry; each
handler imports what it runs. `start` opens the rotation with core.rotation.opening, which
touches no host, so it loads no SSH stack; `advance` and `rollback` load the engine.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.config.record import RotationRecord, client_key
from core.errors import BadInput
from core.rotation import kinds
from tui import secret_flags

if TYPE_CHECKING:
    from core.config.state import State
    from core.rotation.model import Gate, Progress


def parse_now(text: str | None) -> dt.datetime | None:
    if text is None:
        return None
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise BadInput(f"--now {text!r} is not an ISO 8601 date or time (e.g. 2027-01-15 or 2027-01-15T09:00Z).") from None
    return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)


def print_progress(event: Progress) -> None:
    from core.rotation.discard import MANUAL  # loaded already: only a run (advance, rollback, autopilot) reports

    mark = {"ok": "ok", "failed": "FAILED", "skipped": "skip", "running": "..", "waiting": "wait", "warning": "WARN",
            MANUAL: "BYHAND"}.get(event.status, event.status)
    print(f"{event.host:<16} {event.step:<8} {mark:<6} {event.detail}", flush=True)


def print_preview_progress(event: Progress) -> None:
    """A dry run starts nothing: its progress lines say only what it found (no "starting" lines)."""
    if event.status != "running":
        print_progress(event)


def describe_gate(gate: Gate) -> str:
    if gate.kind == "schedule":
        return f"waiting until {gate.until:%Y-%m-%d %H:%M} UTC: {gate.reason}; run advance again then."
    if gate.kind == "certificates":
        return f"waiting for signed certificates: {gate.reason}; still missing: {', '.join(gate.items)}; run advance again then."
    items = ", ".join(gate.items)
    return f"waiting for confirmation: {gate.reason} ({items}); confirm in the wizard or run advance --yes."


def _status(args: argparse.Namespace) -> int:
    from core.config import state as state_mod
    from core.rotation import proof_record

    state = state_mod.load(Path(args.state))
    summary = status_summary(state)
    if args.json:
        print(json.dumps(summary, default=_json_value, indent=2))
        return 0
    print(f"cluster {state.inventory.cluster.name}: phase {summary['phase']}")
    if state.rotation:
        print(f"rotation {summary['rotation_id']} ({summary['kind']}), started {_json_value(summary['started'])}")
        if summary.get("ui_certificate"):
            ui = summary["ui_certificate"]
            print(f"UI certificate {ui.get('subject')} ({ui.get('fingerprint', '')[:16]}…), valid until {ui.get('not_after')}")
        if summary.get("wait_until"):
            print(f"leaf rotation not before {summary['wait_until']}")
        for name, record in summary["nodes"].items():
            steps = ", ".join(f"{k}={v}" for k, v in record.items() if k in ("trust", "leaf", "retire"))
            print(f"  node {name}: {steps or 'not started'}")
        for name, record in summary["clients"].items():
            steps = ", ".join(f"{k}={v}" for k, v in record.items() if k in ("trust", "leaf", "retire") or k.endswith("confirmed"))
            proof = proof_record.label(record)
            print(f"  client {name}: {steps or 'not started'}" + (f"; {proof}: {record.get('proof_detail', '')}" if proof else ""))
        for region, record in summary.get("kubernetes", {}).items():
            steps = ", ".join(f"{k}={v}" for k, v in record.items() if k in ("add", "promote", "remove", "rollback"))
            print(f"  region {region}: {steps}")
        if summary.get("last_error"):
            print(f"last error: {summary['last_error']}")
    if state.history:
        last = state.history[-1]
        print(f"last rotation: {last.get('id')} {last.get('outcome')} on {last.get('finished')}")
    return 0


def _json_value(value: object) -> str:
    """Dates in JSON are ISO 8601 with a T and whole seconds (2027-01-15T09:00:00+00:00), as monitoring parses them."""
    if isinstance(value, dt.datetime):
        return value.replace(microsecond=0).isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


def status_summary(state: State) -> dict[str, Any]:
    rotation = RotationRecord(state.rotation)
    return {
        "cluster": state.inventory.cluster.name,
        "phase": state.phase,
        "rotation_id": rotation.id,
        "kind": rotation.kind,
        "started": rotation.started,
        "wait_until": rotation.wait_until,
        "last_error": rotation.last_error or None,
        "last_error_step": rotation.data.get("last_error_step"),
        "last_error_at": rotation.data.get("last_error_at"),
        "ui_certificate": rotation.ui_certificate,
        "nodes": {n.name: rotation.node(n.name).data for n in state.inventory.nodes},
        "clients": {client_key(c): rotation.client(client_key(c)).data for c in state.inventory.clients},
        "client_proofs": _client_proofs(state),
        "history": state.history,
        **({"kubernetes": rotation.regions} if state.inventory.cluster.on_kubernetes else {}),
    }


def _client_proofs(state: State) -> dict[str, Any]:
    """Per SSH client, the last handshake from its host: this rotation's, else the last finished one's."""
    from core.rotation import proof_record

    if not state.rotation and state.history:
        return dict(state.history[-1].get("client_proofs", {}))
    record = RotationRecord(state.rotation)
    return {client_key(c): proof_record.proof_of(record.client(client_key(c)).data)
            for c in state.inventory.clients if c.delivered_over_ssh}


def _start(args: argparse.Namespace) -> int:
    from core.config import state as state_mod
    from core.rotation import opening

    path = Path(args.state)
    secret_flags.apply(args)
    with state_mod.locked(path):
        state = state_mod.load(path)
        takes_files = kinds.get(args.kind).asks_for_files
        if (args.cert or args.key) and not takes_files:
            raise BadInput("--cert and --key name a UI certificate; they go with `start ui` only.")
        if args.wait_days is not None and args.kind != "ca":
            raise BadInput("--wait-days shortens the wait of a CA rotation; it goes with `start ca` only.")
        options: dict[str, Any] = {"cert_path": args.cert, "key_path": args.key} if takes_files else {}
        if args.wait_days is not None:
            options["wait_days"] = args.wait_days
        if args.new_ca:
            options["new_ca"] = Path(args.new_ca)
        rotation = secret_flags.with_secrets(lambda: opening.start(state, args.kind, **dict(options)))
        state_mod.save(state)
    record = RotationRecord(rotation)
    print(f"started {kinds.get(record.kind).title} {record.id} (phase {record.phase}); run `certrotate advance` next.")
    if record.recovery:
        print(record.recovery.get("why", ""))
    if record.wait_reason:
        print(f"The wait before new leaves is {record.wait_reason}.")
    return 0


def _advance(args: argparse.Namespace) -> int:
    from core.config import state as state_mod
    from core.remote.ssh import SshPool
    from core.rotation import engine

    path = Path(args.state)
    now = parse_now(args.now)
    secret_flags.apply(args)
    with state_mod.locked(path):
        state = state_mod.load(path)
        if not state.rotation:
            print("no rotation in flight (phase idle); start one with `certrotate start ca|nodes|clients|init`.")
            return 0
        report = print_preview_progress if args.dry_run else print_progress
        with SshPool() as pool:
            outcome = secret_flags.with_secrets(lambda: engine.advance(
                state, pool, now=now, yes=args.yes, dry_run=args.dry_run, report=report))
    if args.dry_run:
        print(f"dry run of phase {outcome.phase} (plan {outcome.digest}): nothing was changed on any host.")
        if outcome.held_by:
            print(f"held by the {outcome.held_by.kind} gate: {describe_gate(outcome.held_by)} "
                  "This is the leaf step as it will run once that gate opens.")
        for host, lines in outcome.plan.items():
            print(f"{host}:")
            for line in lines or ["(nothing to do)"]:
                print(f"  {line}")
        if outcome.gate:
            print(describe_gate(outcome.gate))
        return 0
    if outcome.finished:
        print("rotation finished; phase idle.")
        retired = state.history[-1].get("retired_ca_key") if state.history else None
        if retired:
            print(f"The old CA key was moved to {retired} (kept for audits; it signs nothing in use).")
    elif outcome.gate:
        print(f"phase {outcome.phase}: {describe_gate(outcome.gate)}")
    return 0


def _rollback(args: argparse.Namespace) -> int:
    from core.config import state as state_mod
    from core.remote.ssh import SshPool
    from core.rotation import engine
    from core.rotation.discard import MANUAL

    path = Path(args.state)
    with state_mod.locked(path):
        state = state_mod.load(path)
        if not state.rotation:
            raise BadInput("No rotation is in flight; there is nothing to roll back.")
        if not args.yes and not _confirm(f"Restore every host to its files from before rotation {state.rotation['id']}?"):
            print("rollback cancelled.")
            return 0
        by_hand: list[str] = []

        def report(event: Progress) -> None:
            print_progress(event)
            if event.status == MANUAL:
                by_hand.append(event.host)

        with SshPool() as pool:
            outcome = engine.rollback(state, pool, report=report)
    if outcome.gate:  # Kubernetes: the restore manifests wait for the operator
        print(f"rollback: {describe_gate(outcome.gate)}")
        return 0
    print("rolled back; every host certrotate reaches has its files from before the rotation. Phase idle.")
    if by_hand:
        print(f"Still to do by hand: give {', '.join(by_hand)} back the previous files named above "
              "(certrotate cannot reach clients delivered by hand).")
    return 0


def _confirm(question: str) -> bool:
    if not sys.stdin.isatty():
        raise BadInput("rollback needs --yes when it cannot ask (no terminal).")
    return input(f"{question} [y/N] ").strip().lower() in ("y", "yes")


def _check(args: argparse.Namespace) -> int:
    from core import pki
    from core.config import state as state_mod
    from core.diagnose import health
    from core.findings import exit_code

    now = pki.utcnow()
    if args.certs_dir:
        findings = health.check_certs_dir(Path(args.certs_dir), now, args.warn_days, args.crit_days)
    else:
        findings = health.check_state(state_mod.load(Path(args.state)), now, args.warn_days, args.crit_days)
    code = exit_code(findings)
    if args.format != "text":
        from tui.autopilot_cli import print_check

        print_check(args, findings, code)
        return code
    for finding in findings:
        print(health.line(finding))
    if not findings:
        print("OK: nothing due, nothing expiring.")
    return code


def register(subparsers: argparse._SubParsersAction, state_parent: argparse.ArgumentParser) -> None:
    status = subparsers.add_parser("status", parents=[state_parent], help="where the rotation stands")
    status.add_argument("--json", action="store_true", help="one JSON object (phase, hosts, history)")
    status.set_defaults(handler=_status)

    start = subparsers.add_parser("start", parents=[state_parent], help="open a rotation")
    start.add_argument("kind", choices=kinds.NAMES, help=" | ".join(kinds.NAMES))
    start.add_argument("--cert", help="ui: the DB Console certificate (and intermediates) on this machine; "
                                      "default [cluster] ui_cert")
    start.add_argument("--key", help="ui: its private key (mode 0600); default [cluster] ui_key")
    start.add_argument("--wait-days", type=int, metavar="N",
                       help="ca: wait N days (not leaf_delay_days) between trust and new leaves, when the CA expires "
                            "too soon for the usual wait; you acknowledge that clients get less time")
    start.add_argument("--new-ca", metavar="FILE", help="ca: the organisation's new CA certificate "
                                                        '(signer = "cfssl" or "manual")')
    secret_flags.add_flags(start)
    start.set_defaults(handler=_start)

    advance = subparsers.add_parser("advance", parents=[state_parent], help="run every step that is ready")
    advance.add_argument("--yes", action="store_true", help="give the operator confirmations (never skips a date)")
    advance.add_argument("--dry-run", action="store_true", help="print per host what would be written and run")
    advance.add_argument("--now", help="the clock schedule gates read (ISO 8601; rehearsal and tests)")
    secret_flags.add_flags(advance)
    advance.set_defaults(handler=_advance)

    rollback = subparsers.add_parser("rollback", parents=[state_parent], help="undo the rotation in flight")
    rollback.add_argument("--yes", action="store_true", help="do not ask")
    rollback.set_defaults(handler=_rollback)

    check = subparsers.add_parser("check", parents=[state_parent], help="for cron: exit 0 ok, 1 warning, 2 critical")
    check.add_argument("--certs-dir", help="check this certs dir instead of the state file's cluster")
    check.add_argument("--warn-days", type=int, default=30)
    check.add_argument("--crit-days", type=int, default=7)
    check.add_argument("--format", choices=("text", "json", "prometheus"), default="text",
                       help="json: one object; prometheus: node_exporter textfile format (certrotate_* metrics)")
    check.set_defaults(handler=_check)
