"""What every node serves now, probed before a rotation opens: `start recover` decides from it.

A TLS handshake with each node's `sql_addr`, in parallel; only the end of the certificate it
presents is kept (None for a node without a `sql_addr` or that does not answer). Opening
every other kind needs no node, so core.rotation.opening imports this module only for the
kinds that observe nodes.
"""

from __future__ import annotations

import datetime as dt
from concurrent.futures import ThreadPoolExecutor

from core.config.state import State
from core.errors import CertRotateError
from core.remote.probes import probe_sql
from core.rotation.context import MAX_PARALLEL_HOSTS

SERVED_PROBE_TIMEOUT = 5.0


def served_not_after(state: State) -> dict[str, dt.datetime | None]:
    """When the certificate each node serves ends (None: no sql_addr, or it did not answer), probed in parallel."""
    def probe(node) -> dt.datetime | None:
        if not node.sql_addr:
            return None
        try:
            return probe_sql(node.sql_addr, timeout=SERVED_PROBE_TIMEOUT).not_after
        except CertRotateError:
            return None

    nodes = list(state.inventory.nodes)
    if not nodes:
        return {}
    with ThreadPoolExecutor(max_workers=min(MAX_PARALLEL_HOSTS, len(nodes))) as pool:
        return dict(zip([n.name for n in nodes], pool.map(probe, nodes)))
