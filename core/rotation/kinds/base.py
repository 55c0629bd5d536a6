"""What a rotation kind is: the data the engine, the start screen and the overview read.

A kind says which phases it goes through, which CA it replaces (if any), who signs its new
leaves and which hosts get them, what must hold before it may start, and how the wizard
words it. The engine has one trust, one leaf and one retire step; a kind only chooses among
their variations. Everything here is plain data and pure functions, so the wizard reads the
registry before its first paint without loading the SSH stack.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from core.config.inventory import ClusterConfig

if TYPE_CHECKING:  # annotations only: the kinds never import the run's I/O
    from core.config.state import State
    from core.config.workspace import Workspace
    from core.rotation.node_change import NodeChange

FULL_PHASES = ("trust", "wait", "leaf", "retire")
LEAF_ONLY = ("leaf",)


def _always(_: ClusterConfig) -> bool:
    return True


def _never(_: ClusterConfig) -> bool:
    return False


def _no_checks(_state: State, _ws: Workspace, _now: dt.datetime, **_options: Any) -> dict[str, Any]:
    return {}


@dataclass(frozen=True)
class Kind:
    """One rotation kind, as `certrotate start <name>` and the wizard's start screen offer it."""

    name: str  # the word after `certrotate start`
    title: str  # how the wizard names a rotation of this kind: "CA rotation"
    choice: str  # the start screen's button
    summary: str  # the start screen's line under it
    phases: tuple[str, ...] = LEAF_ONLY
    # Which CA's bundle the rotation works on: "node" (ca.crt) or "client" (ca-client.crt).
    authority: str = "node"
    # Who signs the new leaves: "rotation" (a new CA made beside the current one, trusted first),
    # "first" (the cluster's first CA, made by this rotation), "replace" (a new CA that takes the
    # place of an expired one at once: nothing trusts the old one anyway), or None (the current CA).
    new_ca: str | None = None
    renews_node_cert: bool = False  # node.crt/node.key are replaced (not in a client CA rotation)
    node_leaves: Callable[[ClusterConfig], bool] = _never  # every node gets new files in the leaf step
    client_leaves: bool = False  # every client gets a new certificate in the leaf step
    available: Callable[[ClusterConfig], bool] = _always  # offered for this cluster at all
    # Started only by another kind's `open` (recovery picks one of these), never by name.
    hidden: bool = False
    # What must hold before it may start, as a BadInput sentence naming what works instead; returns the
    # fields it adds to the new rotation's record (e.g. a shortened wait the operator acknowledged).
    prepare: Callable[..., dict[str, Any]] = _no_checks
    # A kind whose start checks and stages the operator's own files (ui), or decides from what the
    # nodes serve (recover: `served`, handed over by the engine), opens the rotation itself.
    open: Callable[..., dict[str, Any]] | None = None
    observes_nodes: bool = False  # `open` wants what every node serves now
    asks_for_files: bool = False  # it starts from files the operator names (--cert/--key, the wizard's dialog)
    # Nothing serves anyway (an expired cluster): every node at once, no canary, a failed node does
    # not stop the others and nothing is put back; each node also proves it accepts client
    # certificates of the CA in force.
    all_at_once: bool = False
    # A kind whose node files are not signed by a CA of ours (ui) says what each node gets.
    node_change: Callable[..., NodeChange] | None = None
    leaf_title: str = "Run the leaf step"
    leaf_text: str = ""  # the overview's explanation of the leaf step, where it differs from the default
    # The overview's "next step" panel in this kind's own words, per phase (title, explanation).
    step_texts: dict[str, tuple[str, str]] = field(default_factory=dict)

    @property
    def rotates_ca(self) -> bool:
        """Trust → wait → leaf → retire: a new CA is trusted everywhere before it signs anything."""
        return self.phases == FULL_PHASES

    @property
    def installs_new_bundle(self) -> bool:
        """The new CA bundle goes up with the leaves, in one change: nothing to overlap with (first or replacing CA)."""
        return self.new_ca in ("first", "replace")

    @property
    def restores_on_failure(self) -> bool:
        """A node that fails its leaf step gets its previous files back, unless it served nothing usable anyway."""
        return not (self.first_install or self.all_at_once)

    @property
    def first_install(self) -> bool:
        """Nothing serves yet: the bundle goes up with the leaves, and a failed node does not stop the others."""
        return self.new_ca == "first"

    @property
    def first_phase(self) -> str:
        return self.phases[0]

    def leaf_hosts(self, cluster: ClusterConfig) -> tuple[bool, bool]:
        """(every node, every client): which hosts get new files in the leaf step."""
        return self.node_leaves(cluster), self.client_leaves
