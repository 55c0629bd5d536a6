"""How often a parallel step saves the state file while its hosts finish.

Every save rewrites the whole file (the record of every node and the journal), so its cost
grows with the cluster; saving after each of N hosts would cost each host as much as the
cluster is large. A step therefore saves when a host finishes only if enough time has
passed since the last save: at least MIN_INTERVAL, and at least SHARE times what that save
took, which keeps saving to a small share of the step's time at any cluster size. The step
saves once more when every host is done. A run killed in between has a record that is
behind the hosts, never ahead of them: the next `advance` observes them again and plans
only what is missing.
"""

from __future__ import annotations

import time
from typing import Callable

MIN_INTERVAL = 1.0  # seconds
SHARE = 50  # wait at least this many times the last save's duration


class SavePacer:
    def __init__(self, save: Callable[[], None], *, clock: Callable[[], float] = time.monotonic) -> None:
        self._save = save
        self._clock = clock
        self._next = clock()  # the first host to finish is saved at once

    def host_done(self) -> None:
        """A host finished: save if it is time."""
        if self._clock() >= self._next:
            self.now()

    def now(self) -> None:
        started = self._clock()
        self._save()
        ended = self._clock()
        self._next = ended + max(MIN_INTERVAL, SHARE * (ended - started))
