"""What autopilot does next, decided from the record, the certificates' expiries, the policy and a clock.

Pure: no file, socket or clock is read here, so every rule is a fast test. The rules:
- a rotation in flight goes on (`advance`), unless it waits for a date, or it stopped on a failure —
  then a person looks first: autopilot does not repeat a failed step on a production node by itself;
- otherwise the CA is rotated when it expires within ca_renew_before_days, or when leaves are due
  but a new leaf could not outlive the CA by more than the renewal margin (a leaf never outlives
  its CA, so new leaves would be due again at once);
- otherwise node certificates, then client certificates, when one expires within renew_before_days.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from core.config.autopilot_policy import AutopilotPolicy
from core.config.record import RotationRecord
from core.config.state import State
from core.rotation import kinds


@dataclass(frozen=True)
class CertExpiry:
    """One certificate: whose (inventory name, or "ca"), which file, when it expires (None: unknown, why)."""

    host: str
    role: str  # "node", "client", "ca", "client-ca", "old-ca"
    file: str
    not_after: dt.datetime | None
    fingerprint: str = ""
    problem: str = ""


@dataclass(frozen=True)
class Decision:
    action: str  # "nothing", "wait", "blocked", "start", "advance"
    reason: str
    kind: str | None = None  # the rotation to start or the one in flight
    hosts: tuple[str, ...] = ()  # the certificates' owners that made it due
    until: dt.datetime | None = None  # "wait": the date; "nothing": when something next falls due

    @property
    def changes_nodes(self) -> bool:
        return self.action in ("start", "advance")


def _days(delta: dt.timedelta) -> str:
    days = delta.days
    return "already expired" if delta <= dt.timedelta(0) else f"in {days} day{'s' * (days != 1)}"


def _due(items: list[CertExpiry], days: int, now: dt.datetime) -> list[CertExpiry]:
    return [e for e in items if e.not_after is not None and e.not_after - now <= dt.timedelta(days=days)]


def _first(items: list[CertExpiry]) -> CertExpiry | None:
    known = [e for e in items if e.not_after is not None]
    return min(known, key=lambda e: e.not_after, default=None)


def in_flight(state: State, now: dt.datetime) -> Decision:
    rotation = RotationRecord(state.rotation)
    kind, rid, phase = rotation.kind, rotation.id, state.phase
    known = kinds.lookup(kind)
    title = known.title if known else f"{kind} rotation"  # "the first-time setup …", not "the init rotation …"
    if rotation.last_error:
        return Decision("blocked", f"the {title} {rid} stopped in phase {phase}: {rotation.last_error} "
                                   "Fix the cause and run `certrotate advance` once; autopilot goes on after that.",
                        kind=kind)
    until = rotation.wait_until
    if phase == "wait" and until is not None and now < until:
        return Decision("wait", f"the {title} {rid} waits until {until:%Y-%m-%d %H:%M} UTC before its leaf "
                                "step", kind=kind, until=until)
    return Decision("advance", f"continue the {title} {rid} (phase {phase})", kind=kind)


def decide(state: State, expiries: list[CertExpiry], policy: AutopilotPolicy, now: dt.datetime) -> Decision:
    """The one next thing autopilot does: start a rotation, advance the one in flight, wait, or nothing."""
    if state.rotation:
        return in_flight(state, now)
    cluster = state.inventory.cluster
    ca_days = policy.ca_renew_days(cluster)
    node_days, client_days = policy.node_renew_days(cluster), policy.client_renew_days(cluster)
    ca = next((e for e in expiries if e.role == "ca"), None)
    client_ca = next((e for e in expiries if e.role == "client-ca"), None)
    nodes = [e for e in expiries if e.role == "node"]
    clients = [e for e in expiries if e.role == "client"]
    nodes_due, clients_due = _due(nodes, node_days, now), _due(clients, client_days, now)

    if ca and ca.not_after and ca.not_after - now <= dt.timedelta(days=ca_days):
        return Decision("start", f"the CA expires on {ca.not_after:%Y-%m-%d} ({_days(ca.not_after - now)}), within "
                                 f"ca_renew_before_days ({ca_days})", kind="ca", hosts=("ca",))
    leaves_due = nodes_due + clients_due
    leaf_days = max(node_days if nodes_due else 0, client_days if clients_due else 0)
    if leaves_due and ca and ca.not_after and ca.not_after - now <= dt.timedelta(days=leaf_days):
        return Decision("start", f"certificates of {', '.join(e.host for e in leaves_due)} are due, and new ones "
                                 f"would be cut short by the CA, which expires on {ca.not_after:%Y-%m-%d}",
                        kind="ca", hosts=tuple(e.host for e in leaves_due))
    if client_ca and client_ca.not_after and client_ca.not_after - now <= dt.timedelta(days=ca_days):
        return Decision("start", f"the client CA expires on {client_ca.not_after:%Y-%m-%d} "
                                 f"({_days(client_ca.not_after - now)}), within ca_renew_before_days ({ca_days})",
                        kind="client-ca", hosts=("client-ca",))
    for due, kind, days in ((nodes_due, "nodes", node_days), (clients_due, "clients", client_days)):
        if due:
            first = _first(due)
            return Decision("start", f"{first.file} of {first.host} expires on {first.not_after:%Y-%m-%d} "
                                     f"({_days(first.not_after - now)}), within renew_before_days ({days})",
                            kind=kind, hosts=tuple(e.host for e in due))
    return _nothing_due(ca, client_ca, nodes, clients, (ca_days, node_days, client_days))


def _nothing_due(ca, client_ca, nodes, clients, days: tuple[int, int, int]) -> Decision:
    ca_days, node_days, client_days = days
    dates = []
    for items, margin in (([ca, client_ca], ca_days), (nodes, node_days), (clients, client_days)):
        first = _first([e for e in items if e is not None])
        if first is not None:
            dates.append((first.not_after - dt.timedelta(days=margin), first))
    if not dates:
        return Decision("nothing", "no certificate's expiry is known yet")
    due_at, first = min(dates, key=lambda pair: pair[0])
    return Decision("nothing", f"nothing is due; next: {first.file} of {first.host} (expires "
                               f"{first.not_after:%Y-%m-%d}) on {due_at:%Y-%m-%d}", until=due_at)


def unknown(expiries: list[CertExpiry]) -> list[CertExpiry]:
    """Certificates whose expiry could not be read (a node down, a file missing): said, never guessed."""
    return [e for e in expiries if e.not_after is None]
