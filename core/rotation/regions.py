"""Rolling out region by region: which nodes go together, and what the operator is told.

With `region` set on nodes (docs/regions.md), a phase finishes one region — every node uploaded,
reloaded and verified — before it touches the next, so a bad bundle or certificate costs
at most one region, never the whole cluster. Regions go in the order they first appear in
the inventory; the canary (the inventory's first node) is therefore in the first region.
Nodes without a region form a group of their own, in the same order rule. Without any
region set there is a single group: every node at once, as before regions existed.
"""

from __future__ import annotations

from typing import Callable, Iterable, Iterator, Sequence

from core.config.inventory import NodeConfig
from core.errors import StepFailed
from core.rotation.model import Progress

Group = tuple[str | None, list[NodeConfig]]


def by_region(nodes: Sequence[NodeConfig]) -> list[Group]:
    """The nodes grouped by region, regions in order of first appearance, nodes in inventory order."""
    groups: dict[str | None, list[NodeConfig]] = {}
    for node in nodes:
        groups.setdefault(node.region, []).append(node)
    return list(groups.items())


def label(region: str) -> str:
    """How a region appears where hosts do (the wizard's progress table, the CLI's progress lines)."""
    return f"region {region}"


def _names(nodes: Iterable[NodeConfig]) -> str:
    return ", ".join(node.name for node in nodes)


def started(region: str, step: str, nodes: Sequence[NodeConfig]) -> Progress:
    return Progress(label(region), step, "running", f"{_names(nodes)}: upload, reload, verify", heading=True)


def finished(region: str, step: str, nodes: Sequence[NodeConfig]) -> Progress:
    return Progress(label(region), step, "ok", f"every node verified ({_names(nodes)})", heading=True)


def failed(region: str, step: str) -> Progress:
    return Progress(label(region), step, "failed", "stopped the rollout; later regions untouched", heading=True)


def stopped_sentence(error: Exception, region: str, step: str, later: Sequence[Group]) -> str:
    """The host's own sentence, then which region stopped the rollout and what was left alone."""
    text = str(error).rstrip()
    if not text.endswith("."):
        text += "."
    untouched = [name if name is not None else "(no region)" for name, _ in later]
    if untouched:
        rest = f"region{'s' if len(untouched) > 1 else ''} {', '.join(untouched)} {'were' if len(untouched) > 1 else 'was'} not touched"
    else:
        rest = "it was the last region"
    return f"{text} Region {region} stopped the {step} rollout; {rest}."


def stopped(error: StepFailed, node: NodeConfig, nodes: Sequence[NodeConfig], step: str,
            report: Callable[[Progress], None]) -> str | None:
    """The sentence for `node`'s failure that names its region (None when the node has no region)."""
    if node.region is None:
        return None
    groups = by_region(nodes)
    index = next(i for i, (name, _) in enumerate(groups) if name == node.region)
    report(failed(node.region, step))
    return stopped_sentence(error, node.region, step, groups[index + 1:])


def announce(order: Sequence[NodeConfig], step: str, report: Callable[[Progress], None]) -> Iterator[NodeConfig]:
    """Yield the nodes of a one-by-one rollout, reporting when a region starts and when it is done.

    A region is reported done only when the caller asks for the next node, that is after the
    region's last node came back without an error.
    """
    members = {name: group for name, group in by_region(order)}
    current: str | None = None
    for node in order:
        if node.region != current:
            if current is not None:
                report(finished(current, step, members[current]))
            current = node.region
            if current is not None:
                report(started(current, step, members[current]))
        yield node
    if current is not None:
        report(finished(current, step, members[current]))


def rollout_order(nodes: Sequence[NodeConfig]) -> list[NodeConfig]:
    """Canary first (the first node of the inventory), then region by region in inventory order."""
    if not nodes:
        return []
    canary = nodes[0]
    return [canary] + [node for _, group in by_region(nodes) for node in group if node is not canary]
