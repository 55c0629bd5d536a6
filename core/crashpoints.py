"""Fault injection for the crash tests: SIGKILL ourselves at a chosen save of the state file,
or in a chosen upload to a node with its temps written and nothing renamed yet.

Inert unless CERTROTATE_CRASH_AT is set (tests only), e.g. `save:3:before` kills the
process just before its third state-file save, `save:1:after` right after its first,
`upload:1:before` in the first upload, before its first rename.
A SIGKILL cannot be caught, so this is exactly a power cut or an `kill -9` at that point.
"""

from __future__ import annotations

import os
import signal

ENV = "CERTROTATE_CRASH_AT"
_counts: dict[str, int] = {}


def crash_point(name: str, when: str) -> None:
    spec = os.environ.get(ENV)
    if not spec:
        return
    try:
        wanted_name, number, wanted_when = spec.split(":")
        wanted = int(number)
    except ValueError:
        return
    if wanted_name != name:
        return
    if when == "before":
        _counts[name] = _counts.get(name, 0) + 1
    if _counts.get(name) == wanted and when == wanted_when:
        os.kill(os.getpid(), signal.SIGKILL)
