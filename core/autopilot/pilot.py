"""One autopilot pass: start what the policy says is due, advance what is ready, tell a person what needs one.

It drives the same engine as `certrotate start` and `certrotate advance` (core.rotation.engine.start and
advance), so everything a rotation promises — observe first, plan what is missing, verify by what a
node serves, restore and stop on failure — holds unchanged. On top it adds only:
- the maintenance window: outside it nothing on a node changes, the pass says when the next opens;
- no confirmation is ever given by autopilot: it stops at a confirmation gate and notifies;
- a step that failed is not repeated by itself (decide.in_flight): a person runs `advance` once;
- every event is notified once (core.autopilot.notify), and the pass is recorded in [autopilot_status].

The caller holds the state lock and passes an SSH pool; a dry run changes and sends nothing.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, field
from typing import Callable

from core import pki
from core.autopilot import decide as decide_mod
from core.autopilot import notify, observe, windows
from core.autopilot.notify import Event
from core.config import state as state_mod
from core.config.autopilot_policy import AutopilotPolicy
from core.config.record import TRUST_CONFIRMED, RotationRecord, client_key
from core.config.state import State
from core.errors import BadInput, CertRotateError
from core.rotation import engine, kinds
from core.rotation.model import Gate, Progress, Reporter, silent

MAX_ROTATIONS_PER_PASS = 3  # e.g. node certificates finish, then client certificates start and wait
CRITICAL_DAYS = 7  # like `check --crit-days`: a certificate this close to expiry makes an unrotatable case critical
EXIT = {"nothing-due": 0, "outside-window": 0, "waiting": 0, "finished": 0, "progressed": 0, "dry-run": 0,
        "needs-person": 1, "failed": 1, "cannot-rotate": 1}


@dataclass
class PassReport:
    result: str  # a key of EXIT: what the pass ended with
    lines: list[str] = field(default_factory=list)  # what to print, one sentence each
    events: list[Event] = field(default_factory=list)
    notify_failures: list[str] = field(default_factory=list)
    notified: list[str] = field(default_factory=list)  # "event → target" sent in this pass
    exit_code: int = 0
    next_window: dt.datetime | None = None

    def say(self, line: str) -> None:
        self.lines.append(line)


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _all_hosts(state: State) -> tuple[str, ...]:
    return tuple(n.name for n in state.inventory.nodes) + tuple(client_key(c) for c in state.inventory.clients)


def _event(state: State, now: dt.datetime, key: str, event: str, summary: str, what_to_do: str, *,
           hosts: tuple[str, ...] = (), step: str | None = None, rotation: dict | None = None) -> Event:
    record = RotationRecord(state.rotation if rotation is None else rotation)
    return Event(key=key, event=event, cluster=state.inventory.cluster.name, phase=state.phase, summary=summary,
                 what_to_do=what_to_do, when=now, hosts=hosts, rotation_id=record.id, rotation_kind=record.kind,
                 step=step)


def _trust_confirmations_pending(state: State) -> list[str]:
    """Clients that got the new CA bundle as files to deliver by hand and are not confirmed yet."""
    record = RotationRecord(state.rotation)
    return [client_key(c) for c in state.inventory.clients
            if record.client(client_key(c)).done("trust") and not record.client(client_key(c)).confirmed(TRUST_CONFIRMED)]


def _rotates_ca(kind: str | None) -> bool:
    found = kinds.lookup(kind)
    return bool(found and found.rotates_ca)


def _pending(state: State, confirm_key: str | None) -> list[str]:
    record = RotationRecord(state.rotation)
    return [client_key(c) for c in state.inventory.clients
            if confirm_key and not record.client(client_key(c)).confirmed(confirm_key)]


def _still_waiting(state: State) -> bool:
    """The last pass stopped at this confirmation gate and nobody has confirmed every client since:
    running advance again would only journal the same gate once more."""
    waiting = state.autopilot.get("waiting_for") or {}
    key = engine.current_confirm_key(state)
    return (waiting.get("rotation") == RotationRecord(state.rotation).id and waiting.get("confirm") == key
            and bool(_pending(state, key)))


def confirmation_event(state: State, now: dt.datetime, items: tuple[str, ...], confirm_key: str) -> Event:
    rid = RotationRecord(state.rotation).id
    if confirm_key == "trust_confirmed":
        what = "the new CA bundle (ca.crt)"
        later = " before the leaf step" if state.phase in ("trust", "wait") else ""
    else:
        what = "a new client certificate and key"
        later = " before the old CA is retired" if _rotates_ca(RotationRecord(state.rotation).kind) else ""
    summary = (f"Rotation {rid}: {len(items)} manually delivered client(s) must each get {what} and be restarted"
               f"{later}; autopilot waits for a person to confirm.")
    todo = (f"Deliver the exported files under {state.inventory.cluster.local_certs_dir}/export/<user>/ to "
            f"{', '.join(items)}, restart them, then confirm in the wizard (key c) or run `certrotate advance --yes`.")
    return _event(state, now, f"{rid}:confirm:{confirm_key}", "confirmation_needed", summary, todo, hosts=items,
                  step=confirm_key)


def failure_event(state: State, now: dt.datetime, sentence: str, failed: list[Progress]) -> Event:
    rid = RotationRecord(state.rotation).id
    hosts = tuple(dict.fromkeys(p.host for p in failed)) or _all_hosts(state)
    step = failed[0].step if failed else state.phase
    return _event(state, now, f"{rid}:failed:{_hash(sentence)}", "step_failed",
                  f"Rotation {rid} stopped in phase {state.phase}, step {step}: {sentence}",
                  "Find and fix the cause on the host named, then run `certrotate advance` once (or `certrotate "
                  "rollback`); autopilot goes on after a successful advance.", hosts=hosts, step=step)


def _finished_event(state: State, now: dt.datetime) -> Event:
    last = state.history[-1] if state.history else {}
    rid = last.get("id")
    return _event(state, now, f"{rid}:finished", "rotation_finished",
                  f"The {last.get('kind')} rotation {rid} finished ({last.get('outcome')}); phase idle.",
                  "Nothing: every node serves its new certificate. Manually delivered clients keep the files "
                  "you delivered.", hosts=_all_hosts(state),
                  rotation={"id": rid, "kind": last.get("kind")})


def _cannot_rotate_event(state: State, now: dt.datetime, decision: decide_mod.Decision, why: str) -> Event:
    return _event(state, now, f"cannot:{decision.kind}:{_hash(why)}", "cannot_rotate",
                  f"A {decision.kind} rotation is due ({decision.reason}) but cannot start: {why}",
                  "Fix what the sentence names (for example put the CA key back), or rotate by hand; autopilot "
                  "tries again on its next pass.", hosts=decision.hosts, step=decision.kind, rotation={})


def _critical(expiries: list[decide_mod.CertExpiry], hosts: tuple[str, ...], now: dt.datetime) -> bool:
    """Does a certificate that made the rotation due expire within CRITICAL_DAYS (or has it expired)?"""
    soon = now + dt.timedelta(days=CRITICAL_DAYS)
    return any(e.not_after is not None and e.not_after <= soon for e in expiries if e.host in hosts)


def describe_gate(gate: Gate) -> str:
    if gate.kind == "schedule":
        return f"waiting until {gate.until:%Y-%m-%d %H:%M} UTC: {gate.reason}"
    return f"waiting for a person: {gate.reason} ({', '.join(gate.items)})"


def run_pass(state: State, pool, policy: AutopilotPolicy, *, now: dt.datetime, dry_run: bool = False,
             report: Reporter = silent, expiries: Callable[[State], list[decide_mod.CertExpiry]] | None = None,
             save: Callable[[State], None] = state_mod.save) -> PassReport:
    """One pass at `now` (the clock gates and expiries are judged by); see the module docstring."""
    read_expiries = expiries or observe.expiries
    result = PassReport("nothing-due")
    window = windows.at(policy.windows, policy.minutes, now)
    result.next_window = window.opens
    finished_kinds: list[str] = []
    progressed = False
    for _ in range(MAX_ROTATIONS_PER_PASS):
        seen = read_expiries(state)
        for item in decide_mod.unknown(seen):
            result.say(f"{item.file} of {item.host}: expiry unknown ({item.problem}).")
        decision = decide_mod.decide(state, seen, policy, now)
        if decision.action == "nothing":
            result.result = "finished" if finished_kinds else "progressed" if progressed else "nothing-due"
            result.say(decision.reason[:1].upper() + decision.reason[1:] + ".")
            break
        if decision.action == "wait":
            result.result = "waiting"
            result.say(f"The {decision.reason}.")
            pending = _trust_confirmations_pending(state)
            if pending:
                result.events.append(confirmation_event(state, now, tuple(pending), "trust_confirmed"))
            break
        if decision.action == "blocked":
            result.result = "failed"
            result.say(decision.reason[:1].upper() + decision.reason[1:])
            result.events.append(failure_event(state, now, RotationRecord(state.rotation).last_error, []))
            break
        if decision.kind in finished_kinds:
            why = "it is still due right after a rotation of the same kind finished"
            result.result = "cannot-rotate"
            result.say(f"A {decision.kind} rotation is due ({decision.reason}), but {why}; look at the lifetimes.")
            result.events.append(_cannot_rotate_event(state, now, decision, why))
            break
        if not window.open:
            result.result = "outside-window"
            opens = f"the next window opens {window.opens:%Y-%m-%d %H:%M} UTC" if window.opens else \
                "no window opens within a year; check [autopilot] windows"
            what = f"start a {decision.kind} rotation: {decision.reason}" if decision.action == "start" else \
                decision.reason
            result.say(f"Due: {what}. Outside the maintenance window autopilot changes nothing; {opens}.")
            break
        if dry_run:
            result.result = "dry-run"
            _dry_run(state, pool, decision, now, result)
            break
        if decision.action == "start":
            try:
                engine.start(state, decision.kind, now=now)
            except BadInput as error:
                result.result = "cannot-rotate"
                result.say(f"A {decision.kind} rotation is due ({decision.reason}) but cannot start: {error}")
                result.events.append(_cannot_rotate_event(state, now, decision, str(error)))
                if _critical(seen, decision.hosts, now):
                    result.exit_code = 2
                break
            save(state)
            result.say(f"Started a {decision.kind} rotation {state.rotation['id']}: {decision.reason}.")
        if decision.action == "advance" and _still_waiting(state):
            key = engine.current_confirm_key(state)
            pending = _pending(state, key)
            result.result = "needs-person"
            result.say(f"Rotation {state.rotation['id']} still waits for a person to confirm {', '.join(pending)}.")
            result.events.append(confirmation_event(state, now, tuple(pending), key))
            break
        failed: list[Progress] = []

        def capture(event: Progress) -> None:
            if event.status == "failed":
                failed.append(event)
            report(event)

        try:
            outcome = engine.advance(state, pool, now=now, report=capture)
        except CertRotateError as error:
            result.result = "failed"
            result.exit_code = max(result.exit_code, error.exit_code)
            result.say(f"Rotation {state.rotation.get('id')} stopped: {error}")
            result.events.append(failure_event(state, now, str(error), failed))
            break
        progressed = True
        if outcome.finished:
            finished_kinds.append(state.history[-1].get("kind", ""))
            result.say(f"Rotation {state.history[-1].get('id')} finished; phase idle.")
            result.events.append(_finished_event(state, now))
            continue
        gate = outcome.gate
        result.say(f"Phase {outcome.phase}: {describe_gate(gate)}.")
        if gate.kind == "confirm":
            result.result = "needs-person"
            state.autopilot["waiting_for"] = {"rotation": RotationRecord(state.rotation).id,
                                              "confirm": engine.current_confirm_key(state)}
            result.events.append(confirmation_event(state, now, gate.items, engine.current_confirm_key(state)))
        else:
            result.result = "waiting"
            pending = _trust_confirmations_pending(state)
            if pending:
                result.events.append(confirmation_event(state, now, tuple(pending), "trust_confirmed"))
        break
    result.exit_code = max(result.exit_code, EXIT[result.result])
    if not dry_run:
        for event in result.events:
            sent, failures = notify.deliver(state, policy.targets, event)
            result.notified += [f"{event.event} → {label}" for label in sent]
            result.notify_failures += failures
        if result.notify_failures:
            result.exit_code = max(result.exit_code, 1)
        state.autopilot.update({"last_run": pki.utcnow(), "last_result": result.result,
                                "last_detail": result.lines[-1] if result.lines else "",
                                "last_exit": result.exit_code})
        save(state)
    return result


def _dry_run(state: State, pool, decision: decide_mod.Decision, now: dt.datetime, result: PassReport) -> None:
    """What the pass would do: the decision, then the engine's own dry run on a copy (nothing is saved)."""
    preview = state_mod.snapshot(state)
    if decision.action == "start":
        result.say(f"Would start a {decision.kind} rotation: {decision.reason}.")
        try:
            engine.start(preview, decision.kind, now=now)
        except BadInput as error:
            result.say(f"It could not start: {error}")
            return
    else:
        result.say(f"Would {decision.reason}.")
    outcome = engine.advance(preview, pool, now=now, dry_run=True)
    for host, lines in outcome.plan.items():
        result.say(f"{host}:")
        result.lines += [f"  {line}" for line in lines or ["(nothing to do)"]]
    if outcome.gate:
        result.say(f"Then {describe_gate(outcome.gate)}.")
    result.say("Dry run: nothing was changed and nobody was notified.")
