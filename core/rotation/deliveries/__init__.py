"""The deliveries, by the name `[cluster] delivery` gives: how a rotation's files reach the nodes.

Adding one is a module beside these and a line here.
"""

from __future__ import annotations

from core.config.inventory import ClusterConfig
from core.rotation.deliveries import kubernetes, ssh
from core.rotation.deliveries.base import Delivery

REGISTRY: dict[str, Delivery] = {delivery.name: delivery for delivery in (ssh.DELIVERY, kubernetes.DELIVERY)}

__all__ = ["REGISTRY", "Delivery", "for_cluster"]


def for_cluster(cluster: ClusterConfig) -> Delivery:
    return REGISTRY[cluster.delivery]
