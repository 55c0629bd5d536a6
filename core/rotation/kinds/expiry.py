"""How much time a cluster's certificates have left, judged from the operator's own files (pure).

A kind's start checks use it to refuse what cannot work and name what does: a CA rotation
needs a CA that outlives its wait; new leaves need a CA that is still valid; a cluster whose
CA has expired needs recovery, not a rotation.

The kinds registry is read before the wizard's first frame, so a kind module imports what
reads certificates (cryptography, the workspace) in the function that uses it, never at its top.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING

from core import files
from core.errors import BadInput

if TYPE_CHECKING:
    from core.config.workspace import Workspace

RECOVER = "certrotate start recover"
# The leaf and retire steps follow the wait within minutes; a day of margin keeps them clear of the CA's end.
FINISH_MARGIN = dt.timedelta(days=1)


@dataclass(frozen=True)
class CaLife:
    """The local bundle's first CA (the one that signs) and when it ends."""

    not_after: dt.datetime
    fingerprint: str

    def expired(self, now: dt.datetime) -> bool:
        return self.not_after <= now

    def days_left(self, now: dt.datetime) -> float:
        return (self.not_after - now).total_seconds() / 86400


def signing_ca_life(ws: Workspace, bundle_path=None) -> CaLife:
    """The first CA of the local bundle (ca.crt, or `bundle_path`): the one new leaves are signed by."""
    from core.pki import bundle  # cryptography: on use (see the module's docstring)

    path = bundle_path or ws.bundle_path
    entries = bundle.parse_bundle(files.read_bytes(path, "The local CA bundle"), ws.relative(path)).entries
    first = entries[0]
    return CaLife(first.certificate.not_valid_after_utc, first.fingerprint)


def refuse_if_expired(ws: Workspace, now: dt.datetime, what: str, bundle_path=None) -> None:
    """New leaves from an expired CA would be born dead; recovery makes a new CA instead."""
    life = signing_ca_life(ws, bundle_path)
    if life.expired(now):
        raise BadInput(f"The CA that would sign {what} expired on {life.not_after:%Y-%m-%d %H:%M} UTC, so nothing it "
                       f"signs can be used; bring the cluster back with `{RECOVER}` (a new CA and new leaves in one "
                       "step).")
