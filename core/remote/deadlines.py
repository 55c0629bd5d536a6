"""Deadlines of host steps, kept by one thread for the whole process.

Every SSH operation is a host step with a wall-clock deadline (core.remote.ssh). A timer
thread per step would start and stop a thread for each file read and each command,
hundreds per node; instead one daemon thread sleeps until the earliest deadline. A step
that ends in time cancels its deadline, which is then skipped; one that does not gets its
`on_expire` called, in a thread of its own so that a slow close cannot hold up the others.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import threading
import time
from typing import Callable


class Deadline:
    """Calls `on_expire` once if not cancelled within `seconds`; `expired` tells whether it did."""

    __slots__ = ("seconds", "expires_at", "expired", "cancelled", "_on_expire")

    def __init__(self, seconds: float, on_expire: Callable[[], object]):
        self.seconds = seconds
        self.expires_at = time.monotonic() + seconds
        self.expired = False
        self.cancelled = False
        self._on_expire = on_expire
        _keeper.add(self)

    def remaining(self) -> float:
        return max(0.0, self.expires_at - time.monotonic())

    def cancel(self) -> None:
        if not self.cancelled:
            self.cancelled = True
            _keeper.forget()

    def _fire(self) -> None:
        if self.cancelled:
            return
        self.expired = True
        with contextlib.suppress(Exception):
            self._on_expire()


class _Keeper:
    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Deadline]] = []
        self._order = itertools.count()
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None
        self._cancelled = 0

    def add(self, deadline: Deadline) -> None:
        with self._changed:
            heapq.heappush(self._heap, (deadline.expires_at, next(self._order), deadline))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="certrotate-deadlines", daemon=True)
                self._thread.start()
            elif self._heap[0][2] is deadline:
                self._changed.notify()  # a new earliest deadline: wake up earlier than planned

    def forget(self) -> None:
        """A deadline was cancelled; once most of the heap is cancelled ones, drop them (steps
        end long before their deadlines, so they would otherwise pile up for a minute)."""
        with self._changed:
            self._cancelled += 1
            if self._cancelled > 64 and self._cancelled * 2 > len(self._heap):
                self._heap = [entry for entry in self._heap if not entry[2].cancelled]
                heapq.heapify(self._heap)
                self._cancelled = 0

    def _run(self) -> None:
        while True:
            with self._changed:
                while self._heap and self._heap[0][2].cancelled:
                    heapq.heappop(self._heap)
                    self._cancelled = max(0, self._cancelled - 1)
                if not self._heap:
                    self._changed.wait()
                    continue
                wait = self._heap[0][0] - time.monotonic()
                if wait > 0:
                    self._changed.wait(wait)
                    continue
                _, _, due = heapq.heappop(self._heap)
            threading.Thread(target=due._fire, name="certrotate-deadline-expired", daemon=True).start()


_keeper = _Keeper()
