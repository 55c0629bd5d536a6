"""The deliveries, by the name `[cluster] delivery` gives: how a rotation's files reach the nodes.

Adding one is a module beside these (its `DELIVERY` implements deliveries/base.py) and a
line in MODULES; one that cannot carry out every kind says which it refuses in `check_start`.

A delivery's module is imported when a rotation runs (`for_cluster`), and only the one the
cluster names. Opening a rotation (`certrotate start`) asks `check_start` alone, so it
loads no SSH or Kubernetes machinery, and an SSH cluster's `advance` no Kubernetes code.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from core.config.inventory import ClusterConfig
from core.errors import BadInput

if TYPE_CHECKING:
    from core.rotation.deliveries.base import Delivery
    from core.rotation.kinds import Kind

MODULES: dict[str, str] = {
    "ssh": "core.rotation.deliveries.ssh",
    "kubernetes": "core.rotation.deliveries.kubernetes",
}
KUBERNETES_KINDS = ("ca", "nodes", "clients")

__all__ = ["MODULES", "Delivery", "check_start", "for_cluster"]


def for_cluster(cluster: ClusterConfig) -> Delivery:
    return importlib.import_module(MODULES[cluster.delivery]).DELIVERY


def check_start(cluster: ClusterConfig, kind: Kind) -> None:
    """Refuse a kind the cluster's delivery cannot carry out, with the sentence that says what can.

    Over SSH every kind is carried out."""
    if cluster.delivery != "kubernetes":
        return
    if kind.first_install:
        raise BadInput("First-time setup is not done by certrotate on Kubernetes: the helm chart or operator "
                       "creates the first certificates. Use `start ca`, `start nodes` or `start clients`.")
    if kind.name not in KUBERNETES_KINDS:
        raise BadInput(f"A {kind.name} rotation is not supported with delivery = \"kubernetes\" yet; use "
                       "`start ca`, `start nodes` or `start clients`.")
