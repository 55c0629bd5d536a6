"""SSH delivery: certrotate logs in to every node, uploads, reloads, and proves each change at once.

The trust and retire steps (`push_bundle`) go region by region, each region's nodes in
parallel: each node is observed, must hold either the bundle from before or the one being
rolled out (anything else was changed by hand), and gets only what is missing, then a
reload and the probes that prove the bundle is in use. The leaf step (`push_node_leaves`)
goes node by node, canary first: each node's change (core.rotation.node_change) is uploaded
as one, reloaded once and verified; a node that does not serve its new certificate gets its
previous files back and the rollout stops. A first install has nothing to go back to and
goes on with the other nodes.
"""

from __future__ import annotations

import dataclasses
import hashlib
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

from core import pki
from core.config.inventory import NodeConfig
from core.config.state import State
from core.errors import CertRotateError, StepFailed, named
from core.pki.certs_dir import CLIENT_NODE_CERT
from core.remote.known_hosts import HostKeyChanged, UnknownHostKey
from core.remote.probes import probe_http, probe_sql
from core.remote.ssh import SshPool
from core.rotation import key_on_node, lifecycle, regions, restore
from core.rotation import signers as signers_mod
from core.rotation.context import MAX_PARALLEL_HOSTS, Run
from core.rotation.model import Gate, Outcome, Progress, Reporter
from core.rotation.node_change import NodeChange
from core.rotation.node_leaves import leaf_change, node_leaves
from core.rotation.plans import TrustCheck, plan_bundle, plan_node_change
from core.rotation.signers import LeafSigners, RotationBundles


class SshDelivery:
    name = "ssh"

    def trust_bundle(self, rotated: RotationBundles) -> bytes:
        return rotated.combined  # new CA first: the node presents the new chain as soon as it has leaves of it

    def push_bundle(self, run: Run, step: str, bundle_pem: bytes, allowed_before: list[bytes],
                    checks: list[TrustCheck]) -> Gate | None:
        wanted_sha = hashlib.sha256(bundle_pem).hexdigest()
        allowed = {hashlib.sha256(b).hexdigest() for b in allowed_before} | {wanted_sha}

        def node_work(node: NodeConfig) -> None:
            record = run.node(node.name)
            session = run.session(node)
            ca_path = f"{node.certs_dir.rstrip('/')}/{run.authority.bundle_file}"
            # No handshake of its own: the trust probes show the served leaf (core.rotation.trust_probes).
            facts = dataclasses.replace(run.executor.observe(session, [ca_path], None),
                                        served_fingerprint=_served_expected(run, record, step))
            if facts.files.get(ca_path) not in allowed:
                raise StepFailed(
                    f"{node.name}: {ca_path} is neither the bundle certrotate knows from before this rotation nor "
                    f"the one it is rolling out (it was changed by hand?); compare it with "
                    f"{run.ws.relative(run.authority.local_bundle)} before going on."
                )
            actions = plan_bundle(node.name, node.certs_dir, facts, bundle_pem, reload=run.reload_command(node),
                                  sql_addr=node.sql_addr, checks=checks, backup_id=f"{run.rid}.{step}",
                                  verified=record.done(step), bundle_file=run.authority.bundle_file)
            run.report(Progress(node.name, step, "running", "starting"))
            try:
                run.execute(node.name, session, actions, step)
            finally:
                if not run.dry_run:  # what it served, for the rollback to check, even when the step failed
                    record.note_served_before(facts.served_fingerprint or run.executor.served_seen.get(node.name))
            if not run.dry_run:
                record.mark_done(step, pki.utcnow(), **{f"{step}_bundle_sha256": wanted_sha})
                run.report(Progress(node.name, step, "ok", "bundle in place and verified"))

        _region_by_region(run, step, node_work)
        return None

    def push_node_leaves(self, run: Run, signers: LeafSigners | None, first_bundles: dict[str, bytes]) -> Gate | None:
        changes = _change_maker(run, signers, first_bundles)
        if run.kind.all_at_once:  # nothing serves anyway: every node at once, each verified on its own
            run.in_parallel("leaf", list(run.inventory.nodes), lambda node: roll_out(run, node, changes(node)),
                            lambda node: node.name)
            return None
        first_install = run.kind.first_install
        failures = []
        order = regions.rollout_order(run.inventory.nodes)
        for node in order if first_install or run.dry_run else regions.announce(order, "leaf", run.report):
            try:
                roll_out(run, node, changes(node))
            except StepFailed as error:
                if not first_install:
                    sentence = regions.stopped(error, node, run.inventory.nodes, "leaf", run.report)
                    raise (run.failure(sentence) if sentence else error) from None
                failures.append(str(error))  # a first install serves nothing yet: install everywhere
        if failures:
            more = f" ({len(failures) - 1} more node(s) likewise)" if len(failures) > 1 else ""
            raise StepFailed(failures[0] + more)
        return None

    def check_retire_safe(self, run: Run) -> None:
        """Retiring is safe only when every node serves its new leaf (checked, not only recorded, all nodes at once)."""
        to_probe: list[tuple[NodeConfig, str]] = []
        for node in run.inventory.nodes:
            record = run.node(node.name)
            if not run.kind.renews_node_cert:
                # node.crt comes from the node CA and stays; only client.node.crt depends on the client CA.
                if run.kind.node_leaves(run.inventory.cluster) and not record.done("leaf"):
                    raise StepFailed(f"{node.name} has no new {CLIENT_NODE_CERT} recorded; the old client CA "
                                     "cannot be retired yet.")
                continue
            expected = record.leaf_fingerprint
            if not record.done("leaf") or not expected:
                raise StepFailed(f"{node.name} has no new certificate recorded; the old CA cannot be retired yet.")
            if node.sql_addr:
                to_probe.append((node, expected))
        if not to_probe:
            return
        with ThreadPoolExecutor(max_workers=min(MAX_PARALLEL_HOSTS, len(to_probe))) as pool:
            seen = pool.map(lambda item: probe_sql(item[0].sql_addr).fingerprint, to_probe)
            for (node, expected), served in zip(to_probe, seen):  # the first node in inventory order speaks
                if served != expected:
                    raise StepFailed(
                        f"{node.name} serves certificate {served[:16]}…, not its new one {expected[:16]}…; retiring "
                        "the old CA now would break it. Find out what changed on the node."
                    )

    def rollback(self, state: State, pool: SshPool, report: Reporter) -> Outcome:
        run = Run(state, pool, now=None, yes=True, dry_run=False, report=report, delivery=self)
        restore.restore_everything(run)
        lifecycle.finish(run, "rolled back")
        return Outcome("idle", finished=True)

    def confirm(self, state: State, items: list[str]) -> list[str]:
        return items  # nothing of its own to confirm: every node is verified by certrotate itself

    def pending_step(self, state: State):
        return None


DELIVERY = SshDelivery()


def _change_maker(run: Run, signers: LeafSigners | None,
                  first_bundles: dict[str, bytes]) -> Callable[[NodeConfig], NodeChange]:
    """What each node gets: the kind's own files (ui), or new leaves from the step's signers."""
    if run.kind.node_change is not None:
        return lambda node: run.kind.node_change(run, node)
    assert signers is not None
    server_bundle, client_bundle = signers_mod.leaf_trust_bundles(run, signers)
    # A recovery proves each node accepts client certificates of the CA in force: nothing else would.
    trusted = (signers.client_ca.fingerprint,) if run.kind.all_at_once else ()
    return lambda node: leaf_change(run, node, node_leaves(run, node, signers.node_ca, signers.client_ca),
                                    first_bundles, server_bundle=server_bundle, client_bundle=client_bundle,
                                    trusted=trusted)


def _served_expected(run: Run, record, step: str) -> str | None:
    """The leaf a node must go on serving through a bundle step: its new one once the leaf step gave it
    one (check_retire_safe saw it served), else what it served when the rotation first looked.
    None on a first look: the step's first trust probe tells, and the others must agree."""
    if step == "retire" and run.kind.renews_node_cert and record.done("leaf") and record.leaf_fingerprint:
        return record.leaf_fingerprint
    return record.served_before()


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
            raise run.failure(regions.stopped_sentence(error, region, step, groups[index + 1:])) from error
        if announce:
            run.report(regions.finished(region, step, group))


def _served_before_upload(node: NodeConfig, change: NodeChange) -> str:
    """What the listener serves now, when it must answer before anything goes up (core.rotation.model.Probe)."""
    probe = change.probe
    address = probe.address(node)
    try:
        return (probe_http if probe.direct_tls else probe_sql)(address).fingerprint
    except CertRotateError as error:
        raise StepFailed(f"{node.name}: {probe.listener} does not answer TLS on {address} ({error}); nothing was "
                         f"uploaded to it. Check {probe.address_field} and that the node runs, then run advance "
                         "again.") from None


def roll_out(run: Run, node: NodeConfig, change: NodeChange) -> None:
    """One node's change: upload as one, reload once, verify; its previous files back on failure."""
    record = run.node(node.name)
    session = run.session(node)
    base = node.certs_dir.rstrip("/")
    probe = change.probe
    address = probe.address(node)
    paths = [f"{base}/{name}" for name in change.files]
    if probe.must_answer:
        facts = dataclasses.replace(run.executor.observe(session, paths, None),
                                    served_fingerprint=_served_before_upload(node, change))
    else:
        facts = run.executor.observe(session, paths, address, direct_tls=probe.direct_tls)
    if probe.must_answer and not run.dry_run:
        record.note_served_before(facts.served_fingerprint, probe.served_before_key)
    actions = plan_node_change(node.name, node.certs_dir, facts, change.files,
                               change.serves or facts.served_fingerprint, reload=run.reload_command(node),
                               address=address, direct_tls=probe.direct_tls, backup_id=f"{run.rid}.leaf",
                               verified=record.done("leaf"), accepted=change.accepted, trusted=change.trusted)
    run.report(Progress(node.name, "leaf", "running", "starting"))
    if change.key_made_on_node and run.dry_run:
        run.plans.setdefault(node.name, []).extend(key_on_node.preview_lines(run, node.name, node.certs_dir))
    try:
        if change.key_made_on_node and actions and not run.dry_run:
            key_on_node.switch_key(run, node.name, node.certs_dir, session, f"{run.rid}.leaf")  # backed up, then renamed
        run.execute(node.name, session, actions, "leaf")
    except CertRotateError as error:
        if run.dry_run:
            raise
        if not run.kind.restores_on_failure:
            # A first install or a recovery has nothing working to go back to: the files stay.
            message = f"{named(node.name, error)} Its files are in place; once it runs, run advance again to verify it."
        else:
            before = record.served_before(probe.served_before_key) if probe.must_answer else facts.served_fingerprint
            restored = restore.after_failed_step(run, node, session, "leaf", probe, before, change.journal)
            message = f"{named(node.name, error)} {restored} The rotation is stopped; fix the cause and run advance again."
        record.mark_failed("leaf")
        run.record_view().last_error = message
        run.record(f"{change.journal} failed", host=node.name, detail=str(error))
        run.save()
        raise StepFailed(message) from None
    if not run.dry_run:
        record.mark_done("leaf", pki.utcnow(), **change.recorded)
        run.report(Progress(node.name, "leaf", "ok", change.done_text))
        run.save()
