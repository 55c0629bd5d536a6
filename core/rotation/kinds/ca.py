"""`start ca`: a new CA, trusted everywhere before it signs anything, then the old one retired.

The wait between trust and leaf (`leaf_delay_days`) is what gives every client time to pick
up the new bundle. When the current CA ends sooner than that wait lets the rotation finish,
the rotation is refused with the dates, and the operator may start it with a shorter wait
they acknowledge (`--wait-days N`); the wait gate then shows the shortened date and why.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from core.errors import BadInput
from core.rotation.kinds.base import FULL_PHASES, Kind, _always
from core.rotation.kinds.expiry import FINISH_MARGIN, RECOVER, signing_ca_life

if TYPE_CHECKING:
    from core.config.state import State
    from core.config.workspace import Workspace


class WaitTooLong(BadInput):
    """The CA ends before the usual wait would let a rotation finish; `longest` days still fit."""

    def __init__(self, sentence: str, *, longest: int, ca_not_after: dt.datetime):
        super().__init__(sentence)
        self.longest = longest
        self.ca_not_after = ca_not_after


def longest_wait(ca_not_after: dt.datetime, now: dt.datetime) -> int:
    """Whole days of wait that still leave the leaf and retire steps a day before the CA ends."""
    return max(0, int((ca_not_after - FINISH_MARGIN - now).total_seconds() // 86400))


def prepare(state: State, ws: Workspace, now: dt.datetime, *, wait_days: int | None = None,
            **_options: Any) -> dict[str, Any]:
    """A CA rotation overlaps the new CA with one the cluster still trusts, for long enough to finish."""
    from core.pki import bundle  # cryptography: on use, not when the wizard reads the registry

    ca_bundle = bundle.parse_bundle(ws.read_bundle(), ws.relative(ws.bundle_path))
    expired = ca_bundle.expired(now)
    if expired and len(expired) == len(ca_bundle.entries):
        raise BadInput("Every CA in the local bundle has expired, so the cluster trusts nothing valid and a CA "
                       f"rotation has nothing to overlap with; bring it back with `{RECOVER}`.")
    life = signing_ca_life(ws)
    delay = state.inventory.cluster.leaf_delay_days
    longest = longest_wait(life.not_after, now)
    if wait_days is None:
        if longest >= delay:
            return {}
        raise WaitTooLong(
            f"The CA expires on {life.not_after:%Y-%m-%d %H:%M} UTC, {life.days_left(now):.0f} days from now: sooner "
            f"than the {delay}-day wait (leaf_delay_days) lets a rotation finish. Start it with a shorter wait, "
            f"knowing clients get less time to pick up the new bundle: `certrotate start ca --wait-days {longest}` "
            f"(at most {longest}).", longest=longest, ca_not_after=life.not_after)
    if wait_days < 0 or wait_days > min(delay, longest):
        limit = min(delay, longest)
        raise BadInput(f"--wait-days {wait_days} is not possible here: give 0 to {limit} days (the CA expires on "
                       f"{life.not_after:%Y-%m-%d %H:%M} UTC; leaf_delay_days is {delay}).")
    if wait_days == delay:
        return {}
    why = (f"the CA expires on {life.not_after:%Y-%m-%d}" if longest < delay else "the operator asked for it")
    return {"wait_days": wait_days, "wait_reason": f"shortened from {delay} to {wait_days} days: {why}"}


KIND = Kind(
    name="ca",
    title="CA rotation",
    choice="CA rotation",
    summary="New CA; trust it everywhere, wait, new node and client certificates, retire the old CA.",
    phases=FULL_PHASES,
    authority="node",
    new_ca="rotation",
    renews_node_cert=True,
    node_leaves=_always,
    client_leaves=True,
    prepare=prepare,
)
