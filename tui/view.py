"""What the home screen says, derived from the state file alone (no network): pure functions.

- `timeline`: the four phases of a CA rotation with the dates done and due;
- `next_step`: what the operator does next and why (a date, a confirmation, an error);
- `recorded_hosts`: per host, the steps recorded and the last journaled action.

The engine decides; these only read what it recorded, with the same rules for gates
(wait until `wait_until`, then every manually delivered client confirmed).

They run before the first paint, so they read only the state file's typed views
(core.config.record) and the kinds registry (core.rotation.kinds), never the engine: the
SSH stack is not loaded until a step runs, nor cryptography before the first frame
(tests/test_tui_view.py proves both). `expiry_outage`, which reads the local CA, is the one
exception: the home screen runs it in a worker after the first frame, and until then the
next step is `CHECKING_EXPIRY`.
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass
from typing import Any

from core.config.inventory import ClusterConfig, NodeConfig
from core.config.record import DONE, FAILED, HostRecord, RotationRecord, client_key, confirm_key_for
from core.config.state import State
from core.errors import CertRotateError
from core.rotation import kinds, proof_record
from core.rotation.kinds import Kind, recover

STAGES = kinds.FULL_PHASES
STAGE_TITLES = {
    "trust": "Trust new CA",
    "wait": "Wait",
    "leaf": "New leaf certs",
    "retire": "Retire old CA",
}


def kind_title(name: str | None) -> str:
    kind = kinds.lookup(name)
    return kind.title if kind else (name or "")


def current_confirm_key(state: State) -> str | None:
    """Which confirmation the current phase collects."""
    if state.phase == "retire":
        return proof_record.retire_confirm_key(state)
    return confirm_key_for(state.phase)


def trust_layout(cluster: ClusterConfig) -> list[str]:
    """How the cluster's certificates are laid out, when it is not the default (one CA, node.crt with CN=node)."""
    facts = []
    if cluster.split_node_certs:
        facts.append("split node certs (node.crt + client.node.crt)")
    if cluster.has_client_ca:
        facts.append("client CA in ca-client.crt")
    return facts


def when(value: Any) -> str:
    if isinstance(value, dt.datetime):
        return f"{value:%Y-%m-%d %H:%M}"
    return str(value) if value else ""


def day(value: Any) -> str:
    return f"{value:%Y-%m-%d}" if isinstance(value, dt.datetime) else ""


@dataclass(frozen=True)
class Stage:
    """One box of the phase timeline."""

    name: str
    status: str  # "done", "current", "pending", "skipped", "idle"
    note: str  # the date done or due, or why skipped


def timeline(state: State, now: dt.datetime | None = None) -> list[Stage]:
    """The four cards; `now` is the wizard's clock (time travel), so the cards and the next step agree."""
    now = now or dt.datetime.now(dt.timezone.utc)
    rotation = state.rotation
    if not rotation:
        last = state.history[-1] if state.history else None
        note = f"last: {last.get('outcome')} {day(last.get('finished'))}" if last else "no rotation yet"
        return [Stage(name, "idle", note if name == "trust" else "") for name in STAGES]
    record = RotationRecord(rotation)
    phase, kind = state.phase, kinds.lookup(record.kind)
    if kind is None or not kind.rotates_ca:
        skipped = f"not part of {kind_title(record.kind)}"
        return [Stage(name, "current" if name == "leaf" else "skipped", "in progress" if name == "leaf" else skipped)
                for name in STAGES]
    order = STAGES.index(phase)
    delay = state.inventory.cluster.leaf_delay_days if record.wait_days is None else record.wait_days
    wait_until = record.wait_until
    started = record.started
    due_estimate = started + dt.timedelta(days=delay) if started else None
    waited = phase == "wait" and wait_until is not None and now >= wait_until
    to_confirm = pending_confirmations(state, "trust_confirmed") if phase == "wait" and kind.authority == "node" else []
    wait_note = (f"ended {when(wait_until)}" if waited else f"until {when(wait_until)}") if wait_until else \
        f"{delay} days after trust"
    if to_confirm:
        wait_note += f"; to confirm: {', '.join(to_confirm)}"
    notes = {
        "trust": (f"done {when(record.trust_done_at)}" if order > 0 else f"started {when(started)}"),
        "wait": wait_note,
        "leaf": (f"done {when(record.leaf_done_at())}" if order > 2 else
                 "due now" + (" (after the confirmations)" if to_confirm else "") if waited else
                 f"due {'' if wait_until else '≥ '}{day(wait_until or due_estimate)}"),
        "retire": "right after the new leaves" if order < 3 else "old CA leaves every bundle",
    }
    stages = []
    for index, name in enumerate(STAGES):
        status = "done" if index < order else "current" if index == order else "pending"
        stages.append(Stage(name, status, notes[name]))
    return stages


TRUST_CONFIRM_REASON = ("Each client below got the new CA bundle as files to deliver by hand; confirm that it has "
                        "them and was restarted.")


@dataclass(frozen=True)
class NextStep:
    """What the next-step panel says, and which keys act on it."""

    kind: str  # "start", "run", "schedule", "confirm"; "check" while an idle cluster's expiry is judged
    title: str
    reason: str
    until: dt.datetime | None = None
    items: tuple[str, ...] = ()  # what a confirmation waits for; at a schedule gate, what the wait also needs
    last_error: str = ""
    hint: str = ""  # the key to press, where it is more than the kind's usual one


def pending_confirmations(state: State, confirm_key: str | None = None) -> list[str]:
    """Clients whose delivery the operator has not confirmed yet for the current gate."""
    key = confirm_key or current_confirm_key(state)
    if key is None:
        return []
    record = RotationRecord(state.rotation)
    return [client_key(c) for c in state.inventory.clients if not record.client(client_key(c)).confirmed(key)]


def _leaf_delivered(state: State) -> bool:
    record = RotationRecord(state.rotation)
    return all(record.client(client_key(c)).done("leaf") for c in state.inventory.clients)


class Unjudged(enum.Enum):
    """Whether an idle cluster is down by expiry has not been judged yet (that reads the local CA)."""

    UNJUDGED = "unjudged"


UNJUDGED = Unjudged.UNJUDGED
# What the overview says of an idle cluster until its expiry is judged: neither "start a rotation"
# nor "recover" would be known to be true yet.
CHECKING_EXPIRY = NextStep("check", "Checking the cluster's certificates…",
                           "Reading the local CA bundle (and, as the hosts answer, what each node serves) to tell "
                           "whether the cluster's certificates have expired; the next step follows in a moment.")


def expiry_outage(state: State, now: dt.datetime,
                  served: dict[str, dt.datetime | None] | None = None) -> recover.Recovery | None:
    """The recovery the cluster needs when its certificates have expired (core.rotation.kinds.recover), else None.

    `served` is what the host refresh saw each node serve; without it only the operator's files are judged.
    It reads the local CA with cryptography, so the home screen calls it in a worker thread.
    """
    if state.rotation:
        return None
    from core.config.workspace import Workspace

    try:
        ws = Workspace(state.base_dir, state.inventory.cluster)
        nodes = {node.name: (served or {}).get(node.name) for node in state.inventory.nodes}
        return recover.diagnose(recover.observed(state, ws, nodes), now)
    except CertRotateError:
        return None  # no readable local bundle: nothing to judge here (check and doctor say why)


def next_step(state: State, now: dt.datetime, outage: recover.Recovery | None | Unjudged = UNJUDGED) -> NextStep:
    """What the operator does next; with no rotation in flight that depends on `outage` (`expiry_outage`'s
    answer), and is `CHECKING_EXPIRY` until it is known."""
    rotation = state.rotation
    nodes, clients = len(state.inventory.nodes), len(state.inventory.clients)
    hosts = f"{nodes} node{'s' * (nodes != 1)} and {clients} client{'s' * (clients != 1)}"
    if not rotation:
        if outage is UNJUDGED:
            return CHECKING_EXPIRY
        if outage is not None:
            number = kinds.NAMES.index(recover.NAME) + 1
            return NextStep("start", "Recover the cluster: its certificates have expired", outage.why,
                            hint=f"Press s, then {number} (Recover an expired cluster).")
        return NextStep("start", "Start a rotation",
                        "No rotation is in flight. Start a CA rotation, first-time setup, or a node-only or "
                        "client-only rotation.")
    record = RotationRecord(rotation)
    error = record.last_error
    phase, kind = state.phase, kinds.get(record.kind)
    if state.inventory.cluster.on_kubernetes:
        from core.rotation import kubernetes_manifests as kubernetes  # only Kubernetes clusters pay for it at start-up
    if state.inventory.cluster.on_kubernetes and (waiting := kubernetes.waiting_gates(state.inventory, rotation)):
        return NextStep("confirm", "Apply the Kubernetes manifests, then confirm",
                        "Each region below has a Secret manifest to apply and a StatefulSet to restart; the "
                        "checklist shows the commands. certrotate then verifies the nodes it can reach.",
                        items=tuple(target.gate_item for target, _, _ in waiting), last_error=error)
    if (state.inventory.cluster.on_kubernetes and kind.name in kubernetes.KIND_STEPS and phase in kubernetes.RUN_TEXTS
            and not (phase == "retire" and pending_confirmations(state, "leaf_confirmed"))):
        return NextStep("run", "Write the next region's Secret manifest", kubernetes.RUN_TEXTS[phase],
                        last_error=error)
    if phase in kind.step_texts and not (phase == "retire" and pending_confirmations(state)):
        title, reason = kind.step_texts[phase]
        if phase != "wait" or record.wait_until is None or now >= record.wait_until:
            return NextStep("run", title, reason, last_error=error)
    if phase == "trust":
        return NextStep("run", "Run the trust step",
                        f"Generate the new CA, upload the combined bundle (new CA first, then the old) to {hosts}, "
                        "reload and verify that every node trusts the new CA and still serves its certificate.",
                        last_error=error)
    if phase == "wait":
        until = record.wait_until
        # ca-client.crt is for the nodes only: a client CA rotation delivers clients nothing to confirm yet.
        pending = pending_confirmations(state, "trust_confirmed") if kind.authority == "node" else []
        if until is not None and now < until:
            days = (until - now).days
            waits = state.inventory.cluster.leaf_delay_days if record.wait_days is None else record.wait_days
            shortened = f" The wait was {record.wait_reason}." if record.wait_reason else ""
            return NextStep("schedule", f"Wait until {when(until)} UTC",
                            f"New leaf certificates wait {waits} days after the trust rollout so every client picks "
                            f"up the new bundle ({days} days left).{shortened}", until=until, items=tuple(pending),
                            last_error=error)
        if pending:
            return NextStep("confirm", "Confirm the manually delivered clients", TRUST_CONFIRM_REASON,
                            items=tuple(pending), last_error=error)
        return NextStep("run", "Run the leaf step",
                        "Issue new node certificates from the new CA and roll them out node by node (canary "
                        "first), each verified by the certificate it serves; then new client certificates.",
                        last_error=error)
    if phase == "leaf" and kind.leaf_text:
        return NextStep("run", kind.leaf_title, kind.leaf_text, last_error=error)
    if phase == "leaf":
        pending = pending_confirmations(state, "leaf_confirmed")
        if not kind.rotates_ca and kind.client_leaves and _leaf_delivered(state) and pending:
            return NextStep("confirm", "Confirm the manually delivered clients",
                            "Each client below got its new certificate as files to deliver by hand; confirm that "
                            "it has them and was restarted.", items=tuple(pending), last_error=error)
        if kind.all_at_once:
            return NextStep("run", kind.leaf_title, record.recovery.get("why", ""), last_error=error)
        return NextStep("run", kind.leaf_title,
                        f"Issue and roll out new leaf certificates ({kind.title}), node by node, "
                        "each node verified by the certificate it serves; a node that does not serve its new "
                        "certificate gets its previous files back and the rotation stops.", last_error=error)
    pending = pending_confirmations(state, "leaf_confirmed")
    if pending:
        return NextStep("confirm", "Confirm the manually delivered clients",
                        "Each client below got its new certificate as files to deliver by hand; confirm that it "
                        "has them and was restarted before the old CA is retired.", items=tuple(pending),
                        last_error=error)
    unproven = proof_record.unproven_clients(state)
    if unproven and state.phase == "retire":
        return NextStep("confirm", "Retire without a client-side proof?",
                        "No TLS handshake from these clients' hosts proved their new certificates (no openssl or "
                        "psql there, or the handshake failed; see the host table). Tick a client only if you know "
                        "it connects with its new files; retiring the old CA then goes ahead.", items=tuple(unproven),
                        last_error=error)
    return NextStep("run", "Run the retire step",
                    f"Upload the bundle without the old CA to {hosts}, reload, and verify that every node "
                    "trusts the new CA and no longer the old one.", last_error=error)


@dataclass(frozen=True)
class RecordedHost:
    """One row of the host table, as the state file records it (what the host serves comes from the refresh)."""

    key: str
    role: str  # "node" or "client"
    address: str
    steps: str
    last_action: str
    delivery: str | None = None  # manually delivered clients: "confirmed", "to confirm" or ""
    region: str = ""  # nodes with `region` set in the inventory


def _steps(record: HostRecord, kind: Kind | None) -> str:
    if not kind:
        return "—"
    names = ("trust", "leaf", "retire") if kind.rotates_ca else ("leaf",)
    marks = {DONE: "✓", FAILED: "×"}
    parts = []
    for name in names:
        value = record.status(name)
        parts.append(f"{name}{marks.get(value, value) if value else '·'}")
    return " ".join(parts)


def _last_actions(state: State) -> dict[str, str]:
    """Each host's last journaled action, reading the journal back from its end only as far as needed."""
    hosts = {node.name for node in state.inventory.nodes} | {client_key(c) for c in state.inventory.clients}
    found: dict[str, str] = {}
    for entry in state.journal_log.newest_first():
        host = entry.get("host")
        if host in hosts and host not in found:
            at = entry.get("at")
            stamp = f"{at:%m-%d %H:%M}" if isinstance(at, dt.datetime) else ""
            found[host] = f"{stamp} {entry.get('action', '')}"
            if len(found) == len(hosts):
                break
    return found


def recorded_hosts(state: State) -> list[RecordedHost]:
    rotation = RotationRecord(state.rotation)
    kind = kinds.lookup(rotation.kind)
    last = _last_actions(state)
    rows = []
    for node in state.inventory.nodes:
        record = rotation.node(node.name)
        cluster = state.inventory.cluster
        address = node.ssh_host or _kubernetes_address(cluster, node)
        rows.append(RecordedHost(node.name, "node", address, _steps(record, kind), last.get(node.name, ""),
                                 region=node.region or ""))
    for client in state.inventory.clients:
        key = client_key(client)
        record = rotation.client(key)
        address = "over SSH" if client.ssh_host else "by hand"
        delivery = None
        if not client.ssh_host:
            delivery = ""
            confirm_key = current_confirm_key(state)
            confirm_key = "leaf_confirmed" if confirm_key == proof_record.WAIVER_KEY else confirm_key
            if confirm_key and record.confirmed(confirm_key):
                delivery = "confirmed"
            elif confirm_key and record.done("leaf" if confirm_key == "leaf_confirmed" else "trust"):
                delivery = "to confirm"
        steps = _steps(record, kind)
        if proof_record.label(record.data):
            steps += f" · {proof_record.label(record.data)}"
        rows.append(RecordedHost(key, "client", address, steps, last.get(key, ""), delivery))
    return rows


def _kubernetes_address(cluster: ClusterConfig, node: NodeConfig) -> str:
    """Where a node without SSH lives: its namespace and StatefulSet."""
    from core.rotation import kubernetes_manifests as kubernetes  # only Kubernetes clusters pay for it at start-up

    return f"k8s {kubernetes.namespace_of(cluster, node)}/{cluster.kubernetes_statefulset}"
