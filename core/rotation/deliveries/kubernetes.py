"""Kubernetes delivery, the engine's part: every node step is a Secret manifest and a confirm gate.

With `[cluster] delivery = "kubernetes"` certrotate never logs in to a node. Where the SSH
rotation uploads, reloads and verifies, this one, region by region:

1. writes the region's manifest (core/rotation/kubernetes_manifests.py) under
   `local_certs_dir/kubernetes/<rotation id>/NN-<step>-<region>.yaml` and stops at a
   confirm gate: "apply it, restart the StatefulSet, then confirm";
2. takes the operator's confirmation (`advance --yes`, or the wizard's checklist) only for
   a manifest written by an earlier run, so a cron `advance --yes` cannot confirm a file
   nobody has applied yet;
3. verifies every node of the region that has a `sql_addr` reachable from here (trust
   probe with a throwaway client certificate, served fingerprint); a node that does not
   show the step sends the gate back to "written" and the run fails naming the node.

Per region the record (`[rotation.kubernetes.<region>]`) holds, for each step, its status
("written", "confirmed", "done"), the manifest's path and sha256 and the times — never
the manifest's content. The phases themselves, the schedule (`wait`) and the client
deliveries are the engine's own (core/rotation/engine.py, core/rotation/clients.py): this
module is only the node side of each step.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from core import files, pki
from core.config.inventory import NodeConfig
from core.config.record import RotationRecord, client_key
from core.config.state import State
from core.config.workspace import LeafFiles, ensure_node_leaf
from core.errors import BadInput, CertRotateError, StepFailed
from core.pki import bundle
from core.pki.certs_dir import CA_CERT, NODE_CERT, NODE_KEY
from core.pki.checks import check_leaf_files
from core.pki.keys import key_matches_certificate, load_private_key
from core.remote import probes
from core.remote.ssh import SshPool
from core.rotation import kubernetes_manifests as k8s
from core.rotation import lifecycle
from core.rotation import signers as signers_mod
from core.rotation.context import Run
from core.rotation.model import DONE, Gate, Outcome, Progress, Reporter, silent
from core.rotation.plans import TrustCheck
from core.rotation.restore import rollback_host
from core.rotation.signers import LeafSigners, RotationBundles

WRITTEN = "written"
CONFIRMED = "confirmed"
NODE_STEP = {"add": "trust", "promote": "leaf", "remove": "retire", "rollback": "rollback"}  # per-node record key
BUNDLE_STEPS = {"trust": "add", "retire": "remove"}  # the engine's bundle steps as Secret steps


@dataclass(frozen=True)
class Expectation:
    """What every node of the region must show once the operator says the step is rolled out."""

    served: str | None = None  # the certificate fingerprint it must serve
    keep_served: bool = False  # ... or the one it served when the step's manifest was written
    trusted: tuple[str, ...] = ()  # CAs whose client certificates it must accept
    refused: tuple[str, ...] = ()  # CAs whose client certificates it must refuse


# -- the record -------------------------------------------------------------------------------


def _record(run: Run, region: str) -> dict[str, Any]:
    with run.lock:
        return run.record_view().region_data(region)


def rollback_pending(rotation: dict[str, Any]) -> bool:
    return any("rollback" in record for record in k8s.records(rotation).values())


def _manifest_dir(run: Run):
    return run.ws.local_certs_dir / "kubernetes" / run.rid


def _manifest_path(run: Run, manifest: k8s.SecretManifest):
    names = [t.region for t in k8s.regions(run.inventory)]
    index = k8s.step_index(run.kind.name, manifest.step, names.index(manifest.target.region), len(names))
    return _manifest_dir(run) / manifest.file_name(index)


# -- one region's step: write, wait for the operator, verify ------------------------------------


def _step(run: Run, step: str, target: k8s.RegionTarget, secret_files: dict[str, bytes], expect: Expectation,
          **record_extra: Any) -> Gate | None:
    """Advance one region's step by one stage: not written -> written (gate) -> confirmed -> verified, done."""
    record = _record(run, target.region)
    status = record.get(step)
    if status == DONE:
        return None
    if status is None:
        manifest = k8s.SecretManifest(target, step, run.rid, secret_files)
        if run.dry_run:
            _plan(run, target, manifest, run.ws.relative(_manifest_path(run, manifest)))
            return _gate(run, [(target, step)])
        _write(run, target, manifest, **record_extra)
        return _gate(run, [(target, step)])
    if status == WRITTEN:
        if not run.yes or run.dry_run:
            return _gate(run, [(target, step)])
        _confirm(run, target, step, "operator (--yes)")
    if run.dry_run:
        run.plans.setdefault(target.gate_item, []).append(f"verify the {step} step on every node with a sql_addr")
        return None
    _verify(run, target, step, expect)
    return None


def _write(run: Run, target: k8s.RegionTarget, manifest: k8s.SecretManifest, **record_extra: Any) -> None:
    path = _manifest_path(run, manifest)
    content = manifest.render()
    writer = files.write_private if manifest.private else files.write_public
    writer(path, content, overwrite=True)
    relative, sha256, step = run.ws.relative(path), hashlib.sha256(content).hexdigest(), manifest.step
    if step == "add":
        _note_served_before(run, target)
    run.update_record(_record(run, target.region), **{
        step: WRITTEN, f"{step}_manifest": relative, f"{step}_sha256": sha256, f"{step}_written_at": pki.utcnow(),
        **{f"{step}_{key}": value for key, value in record_extra.items()},
    })
    run.record(f"kubernetes {step}: manifest written", host=target.gate_item, path=relative, sha256=sha256)
    run.report(Progress(target.gate_item, step, "ok", f"wrote {relative} ({manifest.summary()})"))
    run.save()


def _note_served_before(run: Run, target: k8s.RegionTarget) -> None:
    """What each node serves before the Secret changes: a restart must bring back the same certificate."""
    for node in target.nodes:
        record = run.node(node.name)
        if not node.sql_addr or record.served_before():
            continue
        try:
            record.note_served_before(probes.probe_sql(node.sql_addr).fingerprint)
        except CertRotateError:
            pass  # not reachable from here: the step is then confirmed without verification of this node


def _gate(run: Run, waiting: list[tuple[k8s.RegionTarget, str]]) -> Gate:
    """Stop for the operator, and say (again) exactly what to run."""
    for target, step in waiting if not run.dry_run else ():
        path = run.state.base_dir / _record(run, target.region)[f"{step}_manifest"]
        for command in k8s.commands(target, str(path)):
            run.report(Progress(target.gate_item, step, "waiting", command))
    target, step = waiting[0]
    if len(waiting) == 1:
        reason = (f"{step} in region {target.region}: apply "
                  f"{_record(run, target.region).get(f'{step}_manifest', 'the manifest')} to Secret "
                  f"{target.namespace}/{target.secret}, restart statefulset/{target.statefulset}, wait for the "
                  "rollout, then confirm")
    else:
        reason = (f"{step}: apply the manifests under {run.ws.relative(_manifest_dir(run))} to every region "
                  "listed, restart each StatefulSet, wait for the rollouts, then confirm")
    return Gate("confirm", reason, items=tuple(t.gate_item for t, _ in waiting))


def _plan(run: Run, target: k8s.RegionTarget, manifest: k8s.SecretManifest, relative: str) -> None:
    mode = "0600" if manifest.private else "0644"
    run.plans.setdefault(target.gate_item, []).extend(
        [f"write {relative} (mode {mode}): {manifest.summary()}"]
        + [f"then you run: {command}" for command in k8s.commands(target, relative)]
    )


def _confirm(run: Run, target: k8s.RegionTarget, step: str, by: str) -> None:
    run.update_record(_record(run, target.region), **{step: CONFIRMED, f"{step}_confirmed_at": pki.utcnow()})
    run.record(f"kubernetes {step}: confirmed", host=target.gate_item, detail=by)
    run.save()


def confirm(state: State, items: list[str]) -> list[str]:
    """Record the operator's confirmation of region gates (the wizard's checklist); the other items are returned."""
    waiting = {target.gate_item: (target, step) for target, step, _ in k8s.waiting_gates(state.inventory, state.rotation)}
    others = []
    for item in items:
        if not item.startswith(k8s.GATE_PREFIX):
            others.append(item)
            continue
        if item not in waiting:
            raise BadInput(f"{item} has no Kubernetes manifest waiting for a confirmation.")
        target, step = waiting[item]
        record = RotationRecord(state.rotation).region_data(target.region)
        record.update({step: CONFIRMED, f"{step}_confirmed_at": pki.utcnow()})
        state.record(f"kubernetes {step}: confirmed", at=pki.utcnow(), host=item, detail="operator")
    return others


# -- verification ---------------------------------------------------------------------------------


def _verify(run: Run, target: k8s.RegionTarget, step: str, expect: Expectation) -> None:
    """Every reachable node of the region shows the step, or the gate opens again and the run stops."""
    record = _record(run, target.region)
    clients: dict[str, pki.Issued] = {}
    for node in target.nodes:
        if not node.sql_addr:
            run.report(Progress(node.name, step, "skipped", "no sql_addr: not verified from here"))
            continue
        try:
            _verify_node(run, node, expect, clients)
        except CertRotateError as error:
            message = (f"region {target.region}: {error} The {step} gate stays open: check that "
                       f"{record.get(f'{step}_manifest')} was applied to Secret {target.namespace}/{target.secret} "
                       f"and statefulset/{target.statefulset} restarted, then confirm again.")
            run.update_record(record, **{step: WRITTEN})
            with run.lock:
                run.record_view().last_error = message
            run.record(f"kubernetes {step}: verification failed", host=node.name, detail=str(error))
            run.report(Progress(node.name, step, "failed", str(error)))
            run.save()
            raise StepFailed(message) from None
        run.report(Progress(node.name, step, "ok", "verified"))
    now = pki.utcnow()
    run.update_record(record, **{step: DONE, f"{step}_at": now})
    for node in target.nodes:
        promoted = {"leaf_fingerprint": record.get("promote_leaf_fingerprint")} if step == "promote" else {}
        run.node(node.name).mark_done(NODE_STEP[step], now, **promoted)
    run.record(f"kubernetes {step}: done", host=target.gate_item)
    run.save()


def _verify_node(run: Run, node: NodeConfig, expect: Expectation, clients: dict[str, pki.Issued]) -> None:
    timeout = run.executor.verify_timeout
    wanted = expect.served or (run.node(node.name).served_before() if expect.keep_served else None)
    if wanted:
        seen = probes.wait_for_fingerprint(node.sql_addr, wanted, timeout=timeout)
        if seen != wanted:
            raise StepFailed(f"{node.name} serves certificate {seen[:16]}… on {node.sql_addr}, not {wanted[:16]}….")
    checks = [(fp, True) for fp in expect.trusted] + [(fp, False) for fp in expect.refused]
    for fingerprint, trusted in checks:
        ca = run.executor.probe_cas.get(fingerprint)
        if ca is None:
            run.report(Progress(node.name, "verify", "skipped", f"no key for CA {fingerprint[:16]}… to probe with"))
            continue
        client = clients.setdefault(fingerprint, probes.make_probe_client(ca))
        verdict = probes.wait_for_trust(node.sql_addr, ca, trusted, timeout=timeout, client=client,
                                        retry_errors=True)  # a pod restarting answers nothing for a while
        if isinstance(verdict, str):
            verb = "does not accept" if trusted else "still accepts"
            raise StepFailed(f"{node.name} {verb} client certificates of CA {fingerprint[:16]}… ({verdict})")


# -- the steps ------------------------------------------------------------------------------------


def _regions(run: Run) -> list[k8s.RegionTarget]:
    return k8s.regions(run.inventory)


def _region_leaf(run: Run, target: k8s.RegionTarget, ca: pki.Issued, trusted_bundle: bytes) -> LeafFiles:
    """One node certificate per region, covering the addresses of all its nodes; made once, found again."""
    holder = NodeConfig(ssh_host=None, name=f"region-{target.region}", addresses=target.addresses)
    leaf = ensure_node_leaf(run.ws, run.rid, ca, holder, now=pki.utcnow(), dry_run=run.dry_run)
    check_leaf_files(leaf.cert_pem, leaf.key_pem, trusted_bundle, f"the new node.crt of region {target.region}",
                     now=pki.utcnow(), client=False, node_principal=run.inventory.cluster.profile == "cockroach")
    return leaf


def _known(*cas: pki.Issued | None) -> tuple[str, ...]:
    return tuple(ca.fingerprint for ca in cas if ca is not None)


class KubernetesDelivery:
    name = "kubernetes"

    def trust_bundle(self, rotated: RotationBundles) -> bytes:
        # Old CA(s) first: pods restart with the Secret and keep presenting and preferring the old chain.
        return k8s.add_bundle(rotated.before.pem, rotated.new_ca.cert_pem)

    def push_bundle(self, run: Run, step: str, bundle_pem: bytes, allowed_before: list[bytes],
                    checks: list[TrustCheck]) -> Gate | None:
        trusted = tuple(c.ca_fingerprint for c in checks if c.trusted)
        refused = tuple(c.ca_fingerprint for c in checks if not c.trusted)
        secret_step = BUNDLE_STEPS[step]
        for target in _regions(run):
            if secret_step == "add":
                expect = Expectation(keep_served=True, trusted=trusted)
            else:  # ca.crt only: the merge patch leaves the promoted node.crt/node.key in place
                expect = Expectation(served=_record(run, target.region).get("promote_leaf_fingerprint"),
                                     trusted=trusted, refused=refused)
            gate = _step(run, secret_step, target, {CA_CERT: bundle_pem}, expect)
            if gate:
                return gate
        return None

    def push_node_leaves(self, run: Run, signers: LeafSigners | None, first_bundles: dict[str, bytes]) -> Gate | None:
        assert signers is not None and signers.node_ca is not None  # Kubernetes rotates node certificates only
        ca = signers.node_ca
        ca_pem, _ = signers_mod.leaf_trust_bundles(run, signers)
        old = signers_mod.old_ca(run, signers.rotated.before) if signers.rotated else None
        trusted = _known(ca, old)
        for target in _regions(run):
            leaf = _region_leaf(run, target, ca, ca_pem)
            gate = _step(run, "promote", target, {CA_CERT: ca_pem, NODE_CERT: leaf.cert_pem, NODE_KEY: leaf.key_pem},
                         Expectation(served=leaf.fingerprint, trusted=trusted), leaf_fingerprint=leaf.fingerprint)
            if gate:
                return gate
        return None

    def check_retire_safe(self, run: Run) -> None:
        for target in _regions(run):
            if _record(run, target.region).get("promote") != DONE:
                raise StepFailed(f"region {target.region} has no confirmed new node certificate; the old CA cannot be "
                                 "retired yet.")

    def rollback(self, state: State, pool: SshPool, report: Reporter) -> Outcome:
        return rollback(state, pool, report=report)

    def confirm(self, state: State, items: list[str]) -> list[str]:
        return confirm(state, items)

    def pending_step(self, state: State):
        """While a rollback is in progress, every phase's step is the rollback's."""
        return phase_rollback if rollback_pending(state.rotation) else None


DELIVERY = KubernetesDelivery()


# -- rollback ---------------------------------------------------------------------------------


def rollback(state: State, pool: SshPool, *, report: Reporter = silent) -> Outcome:
    """Write the manifests that restore each touched region's Secret, as a gate; confirmed, verify and finish.

    A region whose node certificate may already be the new one needs the node.crt/node.key
    it ran with before: certrotate never held that key. Without them nothing is written and
    the operator is told where to put them.
    """
    if not state.rotation:
        raise BadInput("No rotation is in flight; there is nothing to roll back.")
    run = Run(state, pool, now=None, yes=False, dry_run=False, report=report, delivery=DELIVERY)
    if not rollback_pending(state.rotation):
        touched = _plan_rollback(run)
        _rollback_ssh_clients(run)
        if not touched:
            _finish_rollback(run)
            return Outcome("idle", finished=True)
    gate = phase_rollback(run)
    return Outcome(state.phase, gate=gate) if gate else Outcome("idle", finished=True)


def _before_bundle(run: Run) -> bytes:
    saved = run.ws.rotation_dir(run.rid) / "ca-before.crt"
    return saved.read_bytes() if saved.exists() else run.ws.read_bundle()


def previous_node_files_dir(run: Run, region: str):
    return _manifest_dir(run) / "before" / region


def _plan_rollback(run: Run) -> list[k8s.RegionTarget]:
    before = _before_bundle(run)
    planned: list[tuple[k8s.RegionTarget, dict[str, bytes], str | None]] = []
    for target in _regions(run):
        record = _record(run, target.region)
        if not any(record.get(step) for step in ("add", "promote", "remove")):
            continue
        secret_files, served = {CA_CERT: before}, None
        if record.get("promote"):
            cert_pem, key_pem, served = _previous_node_files(run, target)
            secret_files.update({NODE_CERT: cert_pem, NODE_KEY: key_pem})
        planned.append((target, secret_files, served))
    for target, secret_files, served in planned:  # every region checked before anything is written
        _write(run, target, k8s.SecretManifest(target, "rollback", run.rid, secret_files),
               **({"served": served} if served else {}))
    return [target for target, _, _ in planned]


def _previous_node_files(run: Run, target: k8s.RegionTarget) -> tuple[bytes, bytes, str]:
    directory = previous_node_files_dir(run, target.region)
    cert_path, key_path = directory / NODE_CERT, directory / NODE_KEY
    if not (cert_path.exists() and key_path.exists()):
        raise BadInput(
            f"Region {target.region} may already run its new node certificate, and certrotate never held the node.key "
            f"it ran with before; put that node.crt and node.key in {run.ws.relative(directory)} and run rollback "
            "again, or finish the rotation instead."
        )
    cert_pem, key_pem = cert_path.read_bytes(), key_path.read_bytes()
    entries = bundle.parse_certificates(cert_pem, run.ws.relative(cert_path))
    key = load_private_key(key_pem, run.ws.relative(key_path))
    if not key_matches_certificate(key, entries[0].certificate.public_key()):
        raise BadInput(f"{run.ws.relative(key_path)} is not the key of {run.ws.relative(cert_path)}.")
    return cert_pem, key_pem, entries[0].fingerprint


def _rollback_ssh_clients(run: Run) -> None:
    failures = []
    for client in run.inventory.clients:
        if client.delivered_over_ssh:
            try:
                rollback_host(run, client, client_key(client))
            except CertRotateError as error:
                failures.append(str(error))
    if failures:
        raise StepFailed(f"rollback: {failures[0]}" + (f" ({len(failures) - 1} more)" if len(failures) > 1 else ""))


def phase_rollback(run: Run) -> Gate | None:
    targets = [t for t in _regions(run) if "rollback" in _record(run, t.region)]
    waiting = [t for t in targets if _record(run, t.region).get("rollback") == WRITTEN]
    if waiting and (not run.yes or run.dry_run):
        return _gate(run, [(t, "rollback") for t in waiting])
    for target in waiting:
        _confirm(run, target, "rollback", "operator (--yes)")
    if run.dry_run:
        return None
    old_bundle = bundle.parse_bundle(_before_bundle(run), "the CA bundle from before the rotation")
    old_ca = signers_mod.old_ca(run, old_bundle)
    new_ca = signers_mod.new_ca(run) if run.kind.rotates_ca and "new_ca" in run.rotation else None
    for target in targets:
        record = _record(run, target.region)
        if record.get("rollback") == DONE:
            continue
        served = record.get("rollback_served")
        _verify(run, target, "rollback", Expectation(served=served, keep_served=not served, trusted=_known(old_ca),
                                                      refused=_known(new_ca)))
    _finish_rollback(run)
    return None


def _finish_rollback(run: Run) -> None:
    saved = run.ws.rotation_dir(run.rid) / "ca-before.crt"
    if saved.exists():
        files.write_public(run.ws.bundle_path, saved.read_bytes(), overwrite=True)
    lifecycle.finish(run, "rolled back")
