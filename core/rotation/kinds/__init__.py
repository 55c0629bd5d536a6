"""The rotation kinds, in the order the start screen offers them.

Adding a kind is one module beside these and one line here: the engine, `certrotate start`,
the start screen, the timeline and the progress bar all read this registry.
"""

from __future__ import annotations

from core.config.inventory import ClusterConfig
from core.errors import BadInput
from core.rotation.kinds import ca, client_ca, init, leaves, recover, ui
from core.rotation.kinds.base import FULL_PHASES, Kind

REGISTRY: dict[str, Kind] = {kind.name: kind for kind in (
    ca.KIND,
    init.KIND,
    leaves.NODES,
    leaves.CLIENTS,
    ui.KIND,
    client_ca.KIND,
    recover.RECOVER,
    recover.RECOVER_NEW_CA,
    recover.RECOVER_NODES,
    recover.RECOVER_LEAVES,
    recover.RECOVER_CLIENTS,
)}
NAMES = tuple(name for name, kind in REGISTRY.items() if not kind.hidden)  # what `certrotate start` takes

__all__ = ["FULL_PHASES", "NAMES", "REGISTRY", "Kind", "get", "lookup", "offered"]


def get(name: str) -> Kind:
    """The kind called `name`; BadInput names the ones there are."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise BadInput(f"Unknown rotation {name!r}; choose one of {', '.join(NAMES)}.") from None


def lookup(name: str | None) -> Kind | None:
    """The kind of a recorded rotation, or None when nothing (or something unknown) is recorded."""
    return REGISTRY.get(name) if name else None


def offered(cluster: ClusterConfig) -> list[Kind]:
    """The kinds this cluster can start, in the start screen's order."""
    return [kind for kind in REGISTRY.values() if not kind.hidden and kind.available(cluster)]
