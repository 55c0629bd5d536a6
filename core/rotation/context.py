"""What every step of one `advance` (or rollback) shares: the state, the clock, the SSH pool, the record.

The engine's phases, the deliveries and the rollback all take a `Run`; it knows the rotation's
kind and delivery, and owns the lock under which host threads change the record and save it,
and the journal of what a plan did. A phase returns a `Gate` when it must wait; `advance`
returns an `Outcome`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

from core import pki
from core.config import state as state_mod
from core.config.inventory import ClientConfig, NodeConfig
from core.config.profiles import profile_for
from core.config.record import HostRecord, RotationRecord, client_key
from core.config.state import State
from core.config.workspace import Workspace
from core.errors import CertRotateError, StepFailed
from core.remote.known_hosts import HostKeyChanged, UnknownHostKey
from core.remote.ssh import HostSession, SshPool
from core.rotation import kinds
from core.rotation.authority import authority_for
from core.rotation.contract import Contract
from core.rotation.executor import Executor
from core.rotation.kinds import Kind
from core.rotation.model import (
    Action,
    ExportFiles,
    Progress,
    Reporter,
    RunCommand,
    SwapLinkedDir,
    WriteFiles,
    describe_plan,
    silent,
)
from core.rotation.save_pacing import SavePacer

MAX_PARALLEL_HOSTS = 16
BACKUP_STEPS = ("trust", "leaf", "retire")  # each step backs up into <rotation id>.<step> on the host


def ssh_hosts(inventory) -> list[NodeConfig | ClientConfig]:
    """Every host certrotate writes to over SSH: the nodes and the SSH-delivered clients."""
    nodes = [] if inventory.cluster.on_kubernetes else list(inventory.nodes)
    return nodes + [c for c in inventory.clients if c.delivered_over_ssh]


def host_name(host: NodeConfig | ClientConfig) -> str:
    return host.name if isinstance(host, NodeConfig) else client_key(host)


class Run:
    """One `advance` (or dry run): the state, the clock the gates read, the SSH pool, the reporter."""

    def __init__(self, state: State, pool: SshPool, *, now: dt.datetime | None, yes: bool, dry_run: bool,
                 report: Reporter = silent, delivery: Any = None):
        self.state = state
        self.pool = pool
        self.clock = now or pki.utcnow()
        self.yes = yes
        self.dry_run = dry_run
        self.report = report
        self.ws = Workspace(state.base_dir, state.inventory.cluster)
        self.rotation = state.rotation
        record = RotationRecord(self.rotation)
        self.rid: str = record.id
        self.kind: Kind = kinds.get(record.kind)
        self.authority = authority_for(self.ws, self.kind.authority)  # the CA (bundle file, key) it works on
        self.delivery = delivery  # how files reach the nodes (core.rotation.deliveries), chosen by the engine
        self.plans: dict[str, list[str]] = {}
        # Host steps run in threads; the record is one nested dict that `save` serialises,
        # so every change to it and every save happen under this lock.
        self.lock = threading.RLock()
        self.executor = Executor(pool, report, verify_timeout=state.inventory.cluster.verify_timeout_seconds)
        self.contract = Contract(self)  # compares each host's actions with the last preview

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
            return self.record_view().node_data(name)

    def client_record(self, client: ClientConfig) -> dict[str, Any]:
        with self.lock:
            return self.record_view().client_data(client_key(client))

    def node(self, name: str) -> HostRecord:
        """A node's record as a view whose writes take this run's lock."""
        return HostRecord(self.node_record(name), self.lock)

    def client(self, client: ClientConfig) -> HostRecord:
        return HostRecord(self.client_record(client), self.lock)

    def update_record(self, record: dict[str, Any], **values: Any) -> None:
        with self.lock:
            record.update(values)

    def failure(self, sentence: str) -> StepFailed:
        """The failure as the state file records it (the wizard shows `last_error`) and as it is raised."""
        with self.lock:
            self.record_view().last_error = sentence
        self.save()
        return StepFailed(sentence)

    def reload_command(self, node: NodeConfig) -> str | None:
        """How a node picks up new files: its own `reload`, else its profile's (None: nothing to run)."""
        return node.reload or profile_for(self.inventory.cluster.profile).reload_command

    def record_view(self) -> RotationRecord:
        return RotationRecord(self.rotation)

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
        self.contract.before_host(host, step, describe_plan(actions))
        if not actions:
            self.report(Progress(host, step, "skipped", "already done"))
            return
        self.executor.apply(session, actions, step)
        for action in actions:
            if isinstance(action, (WriteFiles, ExportFiles, SwapLinkedDir)):
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
        pacer = SavePacer(self.save)
        with ThreadPoolExecutor(max_workers=min(MAX_PARALLEL_HOSTS, len(hosts))) as pool:
            futures = {pool.submit(work, host): host for host in hosts}
            for future, host in futures.items():
                try:
                    future.result()
                except CertRotateError as error:
                    failures.append(error)
                    self.report(Progress(name(host), step, "failed", str(error)))
                    with self.lock:
                        self.record_view().last_error = str(error)
                pacer.host_done()
        pacer.now()
        if not failures:
            return
        # A host-key question must reach the caller as itself, so the wizard can ask it.
        first = next((f for f in failures if isinstance(f, (UnknownHostKey, HostKeyChanged))), failures[0])
        if len(failures) == 1:
            raise first
        raise StepFailed(f"{step} step: {first} ({len(failures) - 1} more host(s) failed too)") from first
