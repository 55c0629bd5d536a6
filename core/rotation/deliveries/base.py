"""What a delivery is: how a rotation's files reach the nodes, and what each step returns.

The engine has one trust, one leaf and one retire step for every delivery; a delivery does
the node side of each. Over SSH that is upload, reload and probe at once; on Kubernetes it
is a Secret manifest for the operator to apply, a gate, and the probes once confirmed.
Either may return a Gate, at which `advance` stops.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from core.config.state import State
    from core.remote.ssh import SshPool
    from core.rotation.context import Run
    from core.rotation.model import Gate, Outcome, Reporter
    from core.rotation.plans import TrustCheck
    from core.rotation.signers import LeafSigners, RotationBundles


class Delivery(Protocol):
    name: str

    def trust_bundle(self, rotated: RotationBundles) -> bytes:
        """What the nodes hold during the trust step (both CAs; the order is the delivery's)."""

    def push_bundle(self, run: Run, step: str, bundle_pem: bytes, allowed_before: list[bytes],
                    checks: list[TrustCheck]) -> Gate | None:
        """Put the bundle on every node and prove it is in use (`checks`); trust and retire."""

    def push_node_leaves(self, run: Run, signers: LeafSigners | None, first_bundles: dict[str, bytes]) -> Gate | None:
        """Every node's new leaves (or the kind's own node files), canary first, each verified."""

    def check_retire_safe(self, run: Run) -> None:
        """StepFailed unless every node runs its new leaves, so the old CA can go."""

    def rollback(self, state: State, pool: SshPool, report: Reporter) -> Outcome:
        """Every node back to its files from before the rotation, verified; the rotation closed."""

    def confirm(self, state: State, items: list[str]) -> list[str]:
        """Take the operator's confirmations meant for this delivery; return the others (clients)."""

    def pending_step(self, state: State):
        """A step that replaces the phase's own while it is in progress (a Kubernetes rollback), else None."""
