"""The garbage collector waits while the wizard starts, so its first frame comes without the pauses.

Starting the wizard creates a few hundred thousand objects that live as long as it does:
modules, classes, styles, widgets. CPython's cyclic collector scans the young ones every 700
allocations, some 30 times between the app's start and its first frame (4–7 ms) and 80 more
during the imports before it (~15 ms), and finds nothing to free: none of it is garbage. So
collection waits from the start of the wizard to its first frame, then runs as usual.
Reference counting frees everything else meanwhile, as always.
"""

from __future__ import annotations

import gc

_paused = False


def pause() -> None:
    """Hold the collector until `resume()`; nothing if it is off already (someone else turned it off)."""
    global _paused
    if gc.isenabled():
        gc.disable()
        _paused = True


def resume() -> None:
    """Turn the collector back on if `pause()` turned it off; safe to call more than once."""
    global _paused
    if _paused:
        _paused = False
        gc.enable()
