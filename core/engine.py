"""The rotation runbook as code: phases, gates, and a resumable `advance`.

A CA rotation (`start ca`) goes trust → wait → leaf → retire → idle (SPEC.md); so does a client
CA rotation (`start client-ca`), on ca-client.crt instead of ca.crt (core.client_ca). `start init`,
`start nodes` and `start clients` are a single `leaf` phase. `advance` runs every step that
is ready, in order, and stops at a gate: a schedule date or an operator confirmation.

Every step observes the hosts first and plans only what is missing (core.plans), so a
run killed at any instant is finished by running `advance` again. The state file is saved
after every host, so its record is never ahead of the nodes by more than one host step,
and a step that is recorded done is re-checked cheaply rather than trusted blindly.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from core import bundle, files, pki, regions, remote_files
from core import state as state_mod
from core.actions import Action, ExpectAccepted, ExportFiles, FileContent, RunCommand, WriteFiles, describe_plan
from core.certs_dir import CA_CERT, CLIENT_CA_CERT, NODE_CERT, NODE_KEY, client_cert_name, client_key_name
from core.client_ca import (CLIENT_CA_KIND, CLIENT_NODE_CERT, NodeLeafSet, authority_for, check_can_start_client_ca,
                            check_node_leaf_set)
from core.errors import BadInput, CertRotateError, StepFailed
from core.executor import Executor, Progress, Reporter, silent
from core.inventory import ClientConfig, NodeConfig
from core.keys import key_matches_certificate, load_private_key
from core.profiles import profile_for
from core.probes import probe_sql, wait_for_fingerprint
from core.plans import PRIVATE, PUBLIC, HostFacts, TrustCheck, plan_bundle, plan_client_files, plan_node_leaf
from core.known_hosts import HostKeyChanged, UnknownHostKey
from core.ssh_transport import HostSession, SshPool
from core.state import State
from core.workspace import Workspace, ensure_ca, ensure_client_leaf, ensure_client_node_leaf, ensure_node_leaf

KINDS = ("init", "ca", "nodes", "clients", CLIENT_CA_KIND, "ui")
CA_KINDS = ("ca", CLIENT_CA_KIND)  # the kinds that go trust → wait → leaf → retire
PHASES = ("idle", "trust", "wait", "leaf", "retire")
MAX_PARALLEL_HOSTS = 16
DONE = "done"
BACKUP_STEPS = ("trust", "leaf", "retire")  # each step backs up into <rotation id>.<step> on the host


@dataclass(frozen=True)
class Gate:
    """Why `advance` stopped: a date to wait for, or confirmations only the operator can give."""

    kind: str  # "schedule" or "confirm"
    reason: str
    until: dt.datetime | None = None
    items: tuple[str, ...] = ()


@dataclass
class Outcome:
    phase: str
    gate: Gate | None = None
    finished: bool = False
    plan: dict[str, list[str]] = dataclasses.field(default_factory=dict)


def client_key(client: ClientConfig) -> str:
    """How a client is named in the record: the user, and its host when delivered over SSH."""
    return f"{client.user}@{client.ssh_host}" if client.ssh_host else client.user


def rotation_id_for(kind: str, now: dt.datetime) -> str:
    return f"{now:%Y%m%dT%H%M%SZ}-{kind}"


# -- start ------------------------------------------------------------------------------------


def start(state: State, kind: str, *, now: dt.datetime | None = None, **options: Any) -> dict[str, Any]:
    """Open a rotation of `kind`; refuses while another is in flight. Nothing is touched yet."""
    if kind not in KINDS:
        raise BadInput(f"Unknown rotation {kind!r}; choose one of {', '.join(KINDS)}.")
    if state.inventory.cluster.on_kubernetes:
        from core import kubernetes_rotation
        kubernetes_rotation.check_start(kind)
    if state.rotation:
        raise BadInput(
            f"A {state.rotation.get('kind')} rotation ({state.rotation.get('id')}) is already in phase "
            f"{state.phase}; run `advance` to continue it or `rollback` to undo it."
        )
    if kind == "ui":  # a bring-your-own DB Console certificate (core.ui_cert); options: cert_path, key_path
        from core import ui_cert
        return ui_cert.start(state, **options)
    real_now = pki.utcnow()
    ws = Workspace(state.base_dir, state.inventory.cluster)
    if kind == "init":
        client_ca_files = [ws.client_ca_key_path, ws.client_bundle_path] if ws.client_ca_key_path else []
        for existing in [ws.ca_key_path, ws.bundle_path] + client_ca_files:
            if existing.exists():
                raise BadInput(
                    f"{ws.relative(existing)} already exists; `start init` is for a cluster without certificates. "
                    "Use `start ca` (or `start client-ca`) to rotate an existing CA."
                )
    elif kind == CLIENT_CA_KIND:
        check_can_start_client_ca(ws)
    else:
        ca_bundle = bundle.parse_bundle(ws.read_bundle(), ws.relative(ws.bundle_path))
        if kind in ("nodes", "clients"):
            ws.current_ca()  # the CA key must be here and match, or nothing can be issued
            if kind == "clients" or state.inventory.cluster.split_node_certs:
                ws.current_client_ca()  # likewise the one that signs client certificates and client.node.crt
        expired = ca_bundle.expired(real_now)
        if kind == "ca" and expired and len(expired) == len(ca_bundle.entries):
            raise BadInput("Every CA in the local bundle has expired; the cluster trusts nothing valid. Use `start init`.")
    rotation_id = rotation_id_for(kind, real_now)
    state.rotation = {"id": rotation_id, "kind": kind, "phase": "trust" if kind in CA_KINDS else "leaf", "started": real_now}
    state.record("start", at=real_now, detail=f"{kind} rotation {rotation_id}")
    return state.rotation


# -- the run context ----------------------------------------------------------------------------


class Run:
    """One `advance` (or dry run): the state, the clock the gates read, the SSH pool, the reporter."""

    def __init__(self, state: State, pool: SshPool, *, now: dt.datetime | None, yes: bool, dry_run: bool,
                 report: Reporter = silent):
        self.state = state
        self.pool = pool
        self.clock = now or pki.utcnow()
        self.yes = yes
        self.dry_run = dry_run
        self.report = report
        self.ws = Workspace(state.base_dir, state.inventory.cluster)
        self.rotation = state.rotation
        self.rid: str = self.rotation["id"]
        self.kind: str = self.rotation["kind"]
        self.authority = authority_for(self.ws, self.kind)  # the CA (bundle file, key) a CA rotation replaces
        self.plans: dict[str, list[str]] = {}
        # Host steps run in threads; the record is one nested dict that `save` serialises,
        # so every change to it and every save happen under this lock.
        self.lock = threading.RLock()
        self.executor = Executor(pool, report, verify_timeout=state.inventory.cluster.verify_timeout_seconds)

    @property
    def inventory(self):
        return self.state.inventory

    def save(self) -> None:
        if not self.dry_run:
            with self.lock:
                state_mod.save(self.state)

    def record(self, action: str, **fields: str) -> None:
        with self.lock:
            self.state.record(action, at=pki.utcnow(), **fields)

    def node_record(self, name: str) -> dict[str, Any]:
        with self.lock:
            return self.rotation.setdefault("nodes", {}).setdefault(name, {})

    def client_record(self, client: ClientConfig) -> dict[str, Any]:
        with self.lock:
            return self.rotation.setdefault("clients", {}).setdefault(client_key(client), {})

    def update_record(self, record: dict[str, Any], **values: Any) -> None:
        with self.lock:
            record.update(values)

    def session(self, host: NodeConfig | ClientConfig) -> HostSession:
        if isinstance(host, ClientConfig):
            fields = {f.name: getattr(host, f.name) for f in dataclasses.fields(host)}
            return self.pool.session({**fields, "name": f"client {client_key(host)}"}, self.state.base_dir)
        return self.pool.session(host, self.state.base_dir)

    # -- executing a host's plan --------------------------------------------------------------

    def execute(self, host: str, session: HostSession | None, actions: list[Action], step: str) -> None:
        """Apply (or, in a dry run, list) one host's plan, and journal what was done."""
        if self.dry_run:
            self.plans.setdefault(host, []).extend(describe_plan(actions))
            return
        if not actions:
            self.report(Progress(host, step, "skipped", "already done"))
            return
        self.executor.apply(session, actions, step)
        for action in actions:
            if isinstance(action, (WriteFiles, ExportFiles)):
                for f in action.files:
                    self.record(f"{step}: write", host=host, path=f.path, sha256=f.sha256)
            elif isinstance(action, RunCommand):
                self.record(f"{step}: {action.purpose}", host=host, detail=action.command)
            else:
                self.record(f"{step}: verify", host=host, detail=action.describe()[0])

    def in_parallel(self, step: str, hosts: list[Any], work: Callable[[Any], None], name: Callable[[Any], str]) -> None:
        """Run `work` on every host with a bounded pool; save after each; one sentence for all failures."""
        failures: list[CertRotateError] = []
        if not hosts:
            return
        with ThreadPoolExecutor(max_workers=min(MAX_PARALLEL_HOSTS, len(hosts))) as pool:
            futures = {pool.submit(work, host): host for host in hosts}
            for future, host in futures.items():
                try:
                    future.result()
                except CertRotateError as error:
                    failures.append(error)
                    self.report(Progress(name(host), step, "failed", str(error)))
                    with self.lock:
                        self.rotation["last_error"] = str(error)
                self.save()
        if not failures:
            return
        # A host-key question must reach the caller as itself, so the wizard can ask it.
        first = next((f for f in failures if isinstance(f, (UnknownHostKey, HostKeyChanged))), failures[0])
        if len(failures) == 1:
            raise first
        raise StepFailed(f"{step} step: {first} ({len(failures) - 1} more host(s) failed too)") from first


# -- CA material ------------------------------------------------------------------------------


def _new_ca(run: Run) -> pki.Issued:
    """The rotation's new CA (kind ca, client-ca), or the cluster's first CA (kind init); made once, found again."""
    cluster = run.inventory.cluster
    authority = run.authority
    if run.kind == "init":
        key_path, cert_path = authority.key_path, run.ws.rotation_dir(run.rid) / authority.bundle_file
        name = authority.common_name
    else:
        key_path, cert_path = authority.new_key_path(run.rid), run.ws.rotation_dir(run.rid) / authority.bundle_file
        name = f"{authority.common_name} {run.rid}"
    ca = ensure_ca(key_path, cert_path, key_type=cluster.key_type, lifetime=dt.timedelta(days=cluster.ca_lifetime_days),
                   now=pki.utcnow(), common_name=name, dry_run=run.dry_run)
    if not run.dry_run and "new_ca" not in run.rotation:
        run.rotation["new_ca"] = {
            "fingerprint": ca.fingerprint,
            "key": run.ws.relative(key_path),
            "cert": run.ws.relative(cert_path),
        }
        run.record("new CA", path=run.ws.relative(cert_path), sha256=ca.fingerprint)
        run.save()
    run.executor.probe_cas[ca.fingerprint] = ca
    return ca


def _old_ca(run: Run, old_bundle: bundle.Bundle) -> pki.Issued | None:
    """The CA whose key the operator holds (cluster.ca_key or client_ca_key), to prove trust in it with a probe."""
    key_path = run.authority.key_path
    try:
        key = load_private_key(key_path.read_bytes(), str(key_path))
    except (OSError, BadInput):
        return None
    for entry in old_bundle.entries:
        if key_matches_certificate(key, entry.certificate.public_key()):
            issued = pki.Issued(entry.certificate, key)
            run.executor.probe_cas[issued.fingerprint] = issued
            return issued
    return None


def _signing_ca(run: Run) -> pki.Issued:
    """The CA that signs node.crt: the new one of a CA rotation or first install, else the current one."""
    if run.kind in ("ca", "init"):
        return _new_ca(run)
    ca = run.ws.current_ca()
    run.executor.probe_cas[ca.fingerprint] = ca
    return ca


def _client_signing_ca(run: Run, node_ca: pki.Issued | None) -> pki.Issued:
    """The CA that signs client certificates and client.node.crt: the client CA when the cluster has one."""
    if not run.inventory.cluster.has_client_ca:
        assert node_ca is not None  # only a client CA rotation has none, and it needs a client CA
        return node_ca
    if run.kind == CLIENT_CA_KIND:
        return _new_ca(run)
    if run.kind == "init":
        return _first_client_ca(run)
    return run.ws.current_client_ca()


def _first_client_ca(run: Run) -> pki.Issued:
    """A first install with a client CA makes it beside the CA (its key at cluster.client_ca_key)."""
    authority = authority_for(run.ws, CLIENT_CA_KIND)
    return ensure_ca(authority.key_path, run.ws.rotation_dir(run.rid) / authority.bundle_file,
                     key_type=run.inventory.cluster.key_type,
                     lifetime=dt.timedelta(days=run.inventory.cluster.ca_lifetime_days), now=pki.utcnow(),
                     common_name=authority.common_name, dry_run=run.dry_run)


def _bundles(run: Run) -> tuple[bytes, bundle.Bundle, pki.Issued]:
    """(combined bundle, the bundle before the rotation, new CA) of a CA rotation.

    The bundle from before is kept beside the rotation's files, so that it is known even
    after the local ca.crt was replaced by the combined one.
    """
    new_ca = _new_ca(run)
    authority = run.authority
    before_path = run.ws.rotation_dir(run.rid) / authority.before_name
    if before_path.exists():
        before = before_path.read_bytes()
    else:
        before = files.read_bytes(authority.local_bundle, f"The local {authority.bundle_file} bundle")
        if not run.dry_run:
            files.write_public(before_path, before, overwrite=False)
    old_bundle = bundle.parse_bundle(before, run.ws.relative(authority.local_bundle))
    combined = bundle.combine(new_ca.cert_pem, before)
    if not run.dry_run:
        run.rotation.setdefault("old_ca_fingerprints", old_bundle.fingerprints)
        run.rotation["combined_bundle_sha256"] = hashlib.sha256(combined).hexdigest()
    return combined, old_bundle, new_ca


# -- steps shared by phases ----------------------------------------------------------------------


def _bundle_step(run: Run, step: str, bundle_pem: bytes, allowed_before: list[bytes], checks: list[TrustCheck]) -> None:
    """Put `bundle_pem` on every node (region by region, each region in parallel), reload, verify;
    then deliver it to every client."""
    wanted_sha = hashlib.sha256(bundle_pem).hexdigest()
    allowed = {hashlib.sha256(b).hexdigest() for b in allowed_before} | {wanted_sha}

    def node_work(node: NodeConfig) -> None:
        record = run.node_record(node.name)
        session = run.session(node)
        ca_path = f"{node.certs_dir.rstrip('/')}/{run.authority.bundle_file}"
        facts = run.executor.observe(session, [ca_path], node.sql_addr)
        if facts.files.get(ca_path) not in allowed:
            raise StepFailed(
                f"{node.name}: {ca_path} is neither the bundle certrotate knows from before this rotation nor "
                f"the one it is rolling out (it was changed by hand?); compare it with "
                f"{run.ws.relative(run.authority.local_bundle)} before going on."
            )
        if facts.served_fingerprint and "served_before" not in record and not run.dry_run:
            run.update_record(record, served_before=facts.served_fingerprint)
        actions = plan_bundle(node.name, node.certs_dir, facts, bundle_pem, reload=node.reload or _profile_reload(run),
                              sql_addr=node.sql_addr, checks=checks, backup_id=f"{run.rid}.{step}",
                              verified=record.get(step) == DONE, bundle_file=run.authority.bundle_file)
        run.report(Progress(node.name, step, "running", "starting"))
        run.execute(node.name, session, actions, step)
        if not run.dry_run:
            if record.get(step) != DONE or record.get(f"{step}_bundle_sha256") != wanted_sha:
                run.update_record(record, **{step: DONE, f"{step}_at": pki.utcnow(), f"{step}_bundle_sha256": wanted_sha})
            run.report(Progress(node.name, step, "ok", "bundle in place and verified"))

    _region_by_region(run, step, node_work)
    for client in run.inventory.clients if run.authority.clients_hold_bundle else ():
        _deliver_to_client(run, client, step, {CA_CERT: (bundle_pem, PUBLIC)}, confirm_key=f"{step}_confirmed")


def _region_by_region(run: Run, step: str, node_work: Callable[[NodeConfig], None]) -> None:
    """One region at a time, its nodes in parallel; a region that fails leaves the later ones untouched."""
    groups = regions.by_region(run.inventory.nodes)
    for index, (region, group) in enumerate(groups):
        announce = region is not None and not run.dry_run  # a dry run verifies nothing to announce
        if announce:
            run.report(regions.started(region, step, group))
        try:
            run.in_parallel(step, group, node_work, lambda n: n.name)
        except StepFailed as error:
            if region is None or isinstance(error, (UnknownHostKey, HostKeyChanged)):
                raise
            run.report(regions.failed(region, step))
            raise _recorded(run, regions.stopped_sentence(error, region, step, groups[index + 1:])) from error
        if announce:
            run.report(regions.finished(region, step, group))


def _recorded(run: Run, sentence: str) -> StepFailed:
    """The failure as the state file records it (the wizard shows `last_error`) and as it is raised."""
    with run.lock:
        run.rotation["last_error"] = sentence
    run.save()
    return StepFailed(sentence)


def _deliver_to_client(run: Run, client: ClientConfig, step: str, payload: dict[str, tuple[bytes, int]], *,
                       confirm_key: str) -> None:
    """SSH clients get the files (and their restart); the others get an export to confirm by hand."""
    record = run.client_record(client)
    label = client_key(client)
    if record.get(step) == DONE:
        run.report(Progress(label, step, "skipped", "already delivered"))
        return
    if client.delivered_over_ssh:
        session = run.session(client)
        paths = [f"{client.certs_dir.rstrip('/')}/{name}" for name in payload]
        facts = run.executor.observe(session, paths, None)
        actions = plan_client_files(label, client.certs_dir, facts, payload, restart=client.restart,
                                    backup_id=f"{run.rid}.{step}")
        run.execute(label, session, actions, step)
        if not run.dry_run:
            record[confirm_key] = True
    else:
        export = ExportFiles(label, run.ws.export_dir(client.user),
                             tuple(FileContent(name, content, mode) for name, (content, mode) in payload.items()))
        run.execute(label, None, [export], step)
    if not run.dry_run:
        record[step] = DONE
        record[f"{step}_at"] = pki.utcnow()
        run.report(Progress(label, step, "ok", "delivered" if client.delivered_over_ssh else
                            f"exported to {run.ws.relative(run.ws.export_dir(client.user))}; confirm delivery"))
        run.save()


def _profile_reload(run: Run) -> str | None:
    return profile_for(run.inventory.cluster.profile).reload_command


def _unconfirmed(run: Run, confirm_key: str) -> list[ClientConfig]:
    return [c for c in run.inventory.clients if not run.client_record(c).get(confirm_key)]


def _confirmation_gate(run: Run, confirm_key: str, what: str) -> Gate | None:
    """Manual clients must be confirmed by the operator (the wizard's checklist, or --yes)."""
    pending = _unconfirmed(run, confirm_key)
    if not pending:
        return None
    if run.yes and not run.dry_run:
        for client in pending:
            run.client_record(client)[confirm_key] = True
            run.record(f"confirmed {what}", host=client_key(client), detail="operator (--yes)")
        run.save()
        return None
    return Gate("confirm", f"confirm that every manually delivered client has {what}",
                items=tuple(client_key(c) for c in pending))


def confirm(state: State, items: list[str], confirm_key: str | None = None) -> None:
    """Record the operator's confirmations (the wizard's checklist) for the current gate."""
    if state.inventory.cluster.on_kubernetes:
        from core import kubernetes_rotation
        items = kubernetes_rotation.confirm(state, items)  # region gates; what is left are clients
        if not items:
            return
    key = confirm_key or current_confirm_key(state)
    if key is None:
        raise BadInput("Nothing is waiting for a confirmation.")
    clients = {client_key(c): c for c in state.inventory.clients}
    for item in items:
        if item not in clients:
            raise BadInput(f"No client {item!r} in the inventory.")
        state.rotation.setdefault("clients", {}).setdefault(item, {})[key] = True
        state.record(f"confirmed {key}", at=pki.utcnow(), host=item, detail="operator")


def current_confirm_key(state: State) -> str | None:
    phase = state.phase
    if phase in ("trust", "wait"):
        return "trust_confirmed"
    if phase in ("leaf", "retire"):
        return "leaf_confirmed"
    return None


# -- phases -----------------------------------------------------------------------------------


def phase_trust(run: Run) -> Gate | None:
    combined, old_bundle, new_ca = _bundles(run)
    old_ca = _old_ca(run, old_bundle)
    checks = [TrustCheck(new_ca.fingerprint, True)] + ([TrustCheck(old_ca.fingerprint, True)] if old_ca else [])
    checks = checks if run.authority.probes_prove_trust else []
    _bundle_step(run, "trust", combined, [old_bundle.pem, _file_or_empty(run.authority.local_bundle)], checks)
    if run.dry_run:
        return None
    files.write_public(run.authority.local_bundle, combined, overwrite=True)
    enter_wait(run)
    return None


def enter_wait(run: Run) -> None:
    """The trust rollout is done: the leaf step may come `leaf_delay_days` from now."""
    finished = pki.utcnow()
    run.rotation["trust_done_at"] = finished
    run.rotation["wait_until"] = finished + dt.timedelta(days=run.inventory.cluster.leaf_delay_days)
    run.rotation["phase"] = "wait"
    run.record("phase wait", detail=f"leaf rotation not before {run.rotation['wait_until']:%Y-%m-%d %H:%M} UTC")
    run.save()


def _file_or_empty(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        return b""


def phase_wait(run: Run) -> Gate | None:
    gate_confirm = (_confirmation_gate(run, "trust_confirmed", "the new CA bundle and was restarted")
                    if run.authority.clients_hold_bundle else None)
    until = run.rotation["wait_until"]
    if run.clock < until:
        why = ", so every client picks up the new bundle" if run.authority.clients_hold_bundle else ""
        return Gate("schedule", f"leaf rotation waits {run.inventory.cluster.leaf_delay_days} days after the trust "
                                f"rollout{why}", until=until)
    if gate_confirm:
        return gate_confirm
    if not run.dry_run:
        run.rotation["phase"] = "leaf"
        run.record("phase leaf")
        run.save()
    return None


def _rollout_order(nodes: tuple[NodeConfig, ...]) -> list[NodeConfig]:
    """Canary first (the first node of the inventory), then region by region in inventory order."""
    if not nodes:
        return []
    canary = nodes[0]
    return [canary] + [node for _, group in regions.by_region(nodes) for node in group if node is not canary]


def _node_leaves(run: Run, node: NodeConfig, node_ca: pki.Issued | None, client_ca: pki.Issued) -> NodeLeafSet:
    """node.crt (not when only the client CA changes) and, in the split layout, client.node.crt."""
    now = pki.utcnow()
    server = (None if node_ca is None or run.kind == CLIENT_CA_KIND else
              ensure_node_leaf(run.ws, run.rid, node_ca, node, now=now, dry_run=run.dry_run))
    client_node = (ensure_client_node_leaf(run.ws, run.rid, client_ca, node, now=now, dry_run=run.dry_run)
                   if run.inventory.cluster.split_node_certs else None)
    return NodeLeafSet(server, client_node)


def _leaf_node(run: Run, node: NodeConfig, leaves: NodeLeafSet, first_bundles: dict[str, bytes],
               server_bundle: bytes, client_bundle: bytes) -> None:
    """One node's new leaves as one change: upload, reload once, verify; its previous files back on failure."""
    record = run.node_record(node.name)
    check_node_leaf_set(leaves, node_name=node.name, cluster=run.inventory.cluster, server_bundle=server_bundle,
                        client_bundle=client_bundle, now=pki.utcnow())
    session = run.session(node)
    base = node.certs_dir.rstrip("/")
    server, client_node = leaves.server, leaves.client_node
    bundle_pem = first_bundles.get(CA_CERT)
    extra = {name: (pem, PUBLIC) for name, pem in first_bundles.items() if name != CA_CERT} | leaves.extra_files()
    names = ([NODE_KEY, NODE_CERT] if server else []) + list(extra) + ([CA_CERT] if bundle_pem else [])
    facts = run.executor.observe(session, [f"{base}/{name}" for name in names], node.sql_addr)
    accepted = (ExpectAccepted(node.name, node.sql_addr, pki.NODE_USER, client_node.fingerprint, client_node.cert_pem,
                               client_node.key_pem),) if client_node and node.sql_addr else ()
    # Without a new node.crt (a client CA rotation) the node must go on serving the one it serves.
    actions = plan_node_leaf(node.name, node.certs_dir, facts, server.cert_pem if server else None,
                             server.key_pem if server else None,
                             server.fingerprint if server else facts.served_fingerprint, bundle_pem=bundle_pem,
                             reload=node.reload or _profile_reload(run), sql_addr=node.sql_addr,
                             backup_id=f"{run.rid}.leaf", verified=record.get("leaf") == DONE, extra_files=extra,
                             accepted=accepted)
    run.report(Progress(node.name, "leaf", "running", "starting"))
    try:
        run.execute(node.name, session, actions, "leaf")
    except CertRotateError as error:
        if run.dry_run:
            raise
        if run.kind == "init":
            # A first install has nothing to go back to: the files stay, the node is started next.
            message = f"{_named(node.name, error)} Its files are in place; once it runs, run advance again to verify it."
        else:
            restored = _restore_after_failed_leaf(run, node, session, facts)
            message = f"{_named(node.name, error)} {restored} The rotation is stopped; fix the cause and run advance again."
        record["leaf"] = "failed"
        run.rotation["last_error"] = message
        run.record("leaf failed", host=node.name, detail=str(error))
        run.save()
        raise StepFailed(message) from None
    if not run.dry_run:
        done = {"leaf_fingerprint": server.fingerprint} if server else {}
        done |= {"client_node_fingerprint": client_node.fingerprint} if client_node else {}
        if record.get("leaf") != DONE or any(record.get(key) != value for key, value in done.items()):
            record.update({"leaf": DONE, "leaf_at": pki.utcnow(), **done})
        what = (f"serves the new certificate {server.fingerprint[:16]}…" if server else "keeps serving its certificate")
        run.report(Progress(node.name, "leaf", "ok", what + (f", accepts its new {CLIENT_NODE_CERT}" if client_node else "")))
        run.save()


def _named(host: str, error: CertRotateError) -> str:
    """The error's sentence, starting with the host's name once, not twice."""
    text = str(error)
    return text if text.startswith(host) else f"{host}: {text}"


def _restore_after_failed_leaf(run: Run, node: NodeConfig, session: HostSession, before: HostFacts) -> str:
    """Put the node's previous files back, reload, and check it serves what it served before."""
    try:
        remote_files.restore(session, f"{run.rid}.leaf")
        session.reload(node.reload or _profile_reload(run) or "true")
        if node.sql_addr and before.served_fingerprint:
            seen = wait_for_fingerprint(node.sql_addr, before.served_fingerprint, timeout=run.executor.verify_timeout)
            if seen != before.served_fingerprint:
                return "Its previous files were restored, but it does not serve its previous certificate yet; look at it now."
        run.record("leaf restored", host=node.name, detail="previous node.crt/node.key back in place")
        run.report(Progress(node.name, "leaf", "failed", "restored its previous certificate"))
        return "Its previous certificate was restored and it serves it again."
    except CertRotateError as error:
        return f"Restoring its previous files failed too ({error}); restore it by hand from the backup on the node."


def _leaf_trust_bundles(run: Run, node_ca: pki.Issued | None, client_ca: pki.Issued) -> tuple[bytes, bytes]:
    """(what node.crt is checked against, what client certificates are checked against) during the leaf step."""
    if run.kind == "init" and node_ca is not None:
        server = node_ca.cert_pem
    elif run.kind == "ca":
        server = _bundles(run)[0]
    else:
        server = run.ws.read_bundle()
    if not run.inventory.cluster.has_client_ca:
        return server, server
    if run.kind == "init":
        return server, client_ca.cert_pem
    if run.kind == CLIENT_CA_KIND:
        return server, _bundles(run)[0]
    return server, files.read_bytes(run.ws.client_bundle_path, f"The local {CLIENT_CA_CERT} bundle")


def phase_leaf(run: Run) -> Gate | None:
    if run.kind == "ui":
        from core import ui_cert
        return ui_cert.phase_ui(run)
    # A client CA rotation keeps node.crt, so it needs no node CA key (which may be kept offline).
    ca = None if run.kind == CLIENT_CA_KIND else _signing_ca(run)
    client_ca = _client_signing_ca(run, ca)
    split = run.inventory.cluster.split_node_certs
    nodes_too = run.kind in ("ca", "nodes", "init") or (run.kind == CLIENT_CA_KIND and split)
    clients_too = run.kind in ("ca", "clients", "init", CLIENT_CA_KIND)
    init_bundle = ca.cert_pem if run.kind == "init" else None
    first_bundles = {CA_CERT: ca.cert_pem} if init_bundle else {}
    if init_bundle and run.inventory.cluster.has_client_ca:
        first_bundles[CLIENT_CA_CERT] = client_ca.cert_pem
    if nodes_too:
        server_bundle, client_bundle = _leaf_trust_bundles(run, ca, client_ca)
        failures = []
        order = _rollout_order(run.inventory.nodes)
        for node in order if run.kind == "init" or run.dry_run else regions.announce(order, "leaf", run.report):
            try:
                _leaf_node(run, node, _node_leaves(run, node, ca, client_ca), first_bundles, server_bundle, client_bundle)
            except StepFailed as error:
                if run.kind != "init":
                    # canary first: the first node that fails stops the rollout
                    sentence = regions.stopped(error, node, run.inventory.nodes, "leaf", run.report)
                    raise (_recorded(run, sentence) if sentence else error) from None
                failures.append(str(error))  # a first install serves nothing yet: install everywhere
        if failures:
            more = f" ({len(failures) - 1} more node(s) likewise)" if len(failures) > 1 else ""
            raise StepFailed(failures[0] + more)
    if clients_too:
        for client in run.inventory.clients:
            leaf = ensure_client_leaf(run.ws, run.rid, client_ca, client.user, now=pki.utcnow(), dry_run=run.dry_run)
            payload = {client_cert_name(client.user): (leaf.cert_pem, PUBLIC),
                       client_key_name(client.user): (leaf.key_pem, PRIVATE)}
            if init_bundle:
                payload = {CA_CERT: (init_bundle, PUBLIC), **payload}
            _deliver_to_client(run, client, "leaf", payload, confirm_key="leaf_confirmed")
            if not run.dry_run:
                run.client_record(client)["leaf_fingerprint"] = leaf.fingerprint
    if run.dry_run:
        return None
    if run.kind in CA_KINDS:
        run.rotation["phase"] = "retire"
        run.record("phase retire")
        run.save()
        return None
    gate = _confirmation_gate(run, "leaf_confirmed", "its new certificate and was restarted") if clients_too else None
    if gate:
        return gate
    if run.kind == "init":
        files.write_public(run.ws.bundle_path, ca.cert_pem, overwrite=True)
        if CLIENT_CA_CERT in first_bundles:
            files.write_public(run.ws.client_bundle_path, client_ca.cert_pem, overwrite=True)
    _finish(run, "done")
    return None


def phase_retire(run: Run) -> Gate | None:
    combined, old_bundle, new_ca = _bundles(run)
    gate = _confirmation_gate(run, "leaf_confirmed", "its new certificate and was restarted")
    if gate:
        return gate
    _check_nothing_depends_on_old_ca(run)
    final = bundle.remove(combined, set(old_bundle.fingerprints))
    old_ca = _old_ca(run, old_bundle)
    checks = [TrustCheck(new_ca.fingerprint, True)] + ([TrustCheck(old_ca.fingerprint, False)] if old_ca else [])
    checks = checks if run.authority.probes_prove_trust else []
    _bundle_step(run, "retire", final, [combined], checks)
    if run.dry_run:
        return None
    files.write_public(run.authority.local_bundle, final, overwrite=True)
    new_key = run.rotation["new_ca"]["key"]
    state = run.state
    state.inventory = dataclasses.replace(
        state.inventory, cluster=dataclasses.replace(state.inventory.cluster, **{run.authority.key_field: new_key}))
    run.record("retired old CA", detail=", ".join(fp[:16] for fp in old_bundle.fingerprints))
    _finish(run, "done")
    return None


def _check_nothing_depends_on_old_ca(run: Run) -> None:
    """Retiring is safe only when every node serves its new leaf and every client holds one."""
    for node in run.inventory.nodes:
        record = run.node_record(node.name)
        if run.kind == CLIENT_CA_KIND:
            # node.crt comes from the node CA and stays; only client.node.crt depends on the client CA.
            if run.inventory.cluster.split_node_certs and record.get("leaf") != DONE:
                raise StepFailed(f"{node.name} has no new {CLIENT_NODE_CERT} recorded; the old client CA cannot be "
                                 "retired yet.")
            continue
        expected = record.get("leaf_fingerprint")
        if record.get("leaf") != DONE or not expected:
            raise StepFailed(f"{node.name} has no new certificate recorded; the old CA cannot be retired yet.")
        if node.sql_addr:
            served = probe_sql(node.sql_addr).fingerprint
            if served != expected:
                raise StepFailed(
                    f"{node.name} serves certificate {served[:16]}…, not its new one {expected[:16]}…; retiring the "
                    "old CA now would break it. Find out what changed on the node."
                )
    for client in run.inventory.clients:
        if run.client_record(client).get("leaf") != DONE:
            raise StepFailed(f"client {client_key(client)} has no new certificate yet; the old CA cannot be retired.")


def _finish(run: Run, outcome: str) -> None:
    finished = pki.utcnow()
    entry = {key: value for key, value in run.rotation.items() if key in ("id", "kind", "started", "new_ca")}
    entry.update({"finished": finished, "outcome": outcome})
    run.state.history.append(entry)
    run.record("finished", detail=f"{run.kind} rotation {run.rid}: {outcome}")
    # The backups hold the old private keys; once the rotation is over nothing may restore them.
    for host in _ssh_hosts(run.inventory):
        try:
            session = run.session(host)
            for step in BACKUP_STEPS:
                remote_files.remove_backup(session, f"{run.rid}.{step}")
        except CertRotateError as error:
            run.record("backup kept", host=_host_name(host), detail=str(error))
    run.state.rotation = {}
    run.rotation = {}
    run.save()


def _ssh_hosts(inventory) -> list[NodeConfig | ClientConfig]:
    """Every host certrotate writes to over SSH: the nodes and the SSH-delivered clients."""
    nodes = [] if inventory.cluster.on_kubernetes else list(inventory.nodes)
    return nodes + [c for c in inventory.clients if c.delivered_over_ssh]


def _host_name(host: NodeConfig | ClientConfig) -> str:
    return host.name if isinstance(host, NodeConfig) else client_key(host)


PHASE_STEPS: dict[str, Callable[[Run], Gate | None]] = {
    "trust": phase_trust,
    "wait": phase_wait,
    "leaf": phase_leaf,
    "retire": phase_retire,
}


def advance(state: State, pool: SshPool, *, now: dt.datetime | None = None, yes: bool = False, dry_run: bool = False,
            report: Reporter = silent) -> Outcome:
    """Run every step that is ready; stop at a gate, at the end, or (raising StepFailed) at a failure."""
    if not state.rotation:
        return Outcome("idle", finished=False)
    run = Run(state, pool, now=now, yes=yes, dry_run=dry_run, report=report)
    run.rotation.pop("last_error", None)
    while state.rotation:
        phase = state.phase
        if state.inventory.cluster.on_kubernetes:
            from core import kubernetes_rotation
            gate = kubernetes_rotation.phase_steps(state)[phase](run)
        else:
            gate = PHASE_STEPS[phase](run)
        if run.dry_run:
            order = [n.name for n in state.inventory.nodes] + [client_key(c) for c in state.inventory.clients]
            order += [host for host in run.plans if host not in order]  # e.g. Kubernetes regions
            plans = {host: run.plans[host] for host in order if host in run.plans}
            return Outcome(phase, gate=gate, plan=plans)
        if gate is not None:
            run.record("gate", detail=gate.reason)
            run.save()
            return Outcome(phase, gate=gate)
    return Outcome("idle", finished=True)


# -- rollback ---------------------------------------------------------------------------------


def rollback(state: State, pool: SshPool, *, report: Reporter = silent) -> Outcome:
    """Return every host to the files it had before the rotation, reload, verify; back to idle."""
    if not state.rotation:
        raise BadInput("No rotation is in flight; there is nothing to roll back.")
    if state.inventory.cluster.on_kubernetes:
        from core import kubernetes_rotation
        return kubernetes_rotation.rollback(state, pool, report=report)
    run = Run(state, pool, now=None, yes=True, dry_run=False, report=report)
    failures: list[str] = []
    for host in _ssh_hosts(state.inventory):
        name = _host_name(host)
        try:
            _rollback_host(run, host, name)
        except CertRotateError as error:
            failures.append(str(error))
            report(Progress(name, "rollback", "failed", str(error)))
    before = run.ws.rotation_dir(run.rid) / run.authority.before_name
    if before.exists():
        files.write_public(run.authority.local_bundle, before.read_bytes(), overwrite=True)
    if failures:
        run.rotation["last_error"] = failures[0]
        run.save()
        raise StepFailed(f"rollback: {failures[0]}" + (f" ({len(failures) - 1} more)" if len(failures) > 1 else ""))
    _finish(run, "rolled back")
    return Outcome("idle", finished=True)


def _rollback_host(run: Run, host: NodeConfig | ClientConfig, name: str) -> None:
    session = run.session(host)
    touched = False
    for step in reversed(BACKUP_STEPS):
        if remote_files.read_manifest(session, f"{run.rid}.{step}") is not None:
            remote_files.restore(session, f"{run.rid}.{step}")
            touched = True
            run.record("rollback: restored", host=name, detail=f"files from before the {step} step")
    if not touched:
        run.report(Progress(name, "rollback", "skipped", "nothing to restore"))
        return
    if isinstance(host, ClientConfig):
        if host.restart:
            session.run(host.restart)
        run.report(Progress(name, "rollback", "ok", "files restored"))
        return
    session.reload(host.reload or _profile_reload(run) or "true")
    expected = run.node_record(host.name).get("served_before")
    if host.sql_addr and expected:
        seen = wait_for_fingerprint(host.sql_addr, expected, timeout=run.executor.verify_timeout)
        if seen != expected:
            raise StepFailed(f"{name} was restored but serves {seen[:16]}…, not its previous certificate {expected[:16]}….")
    if run.kind == "ui":
        from core import ui_cert
        ui_cert.verify_rolled_back(run, host)
    run.report(Progress(name, "rollback", "ok", "previous files restored and served"))
