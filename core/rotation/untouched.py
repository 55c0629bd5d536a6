"""Which hosts a rotation has touched, from its journal and record: rollback skips the others.

A host the rotation never changed has nothing to restore, so a rollback must not fail on it
merely because it is unreachable (a first-time setup started while one node was down could
otherwise never be rolled back). "Touched" is read generously: any journaled action on the
host since the rotation started, or any step status recorded for it.
"""

from __future__ import annotations

from typing import Any

from core.config.record import RotationRecord
from core.config.state import State

STEP_KEYS = ("trust", "leaf", "retire", "ui")


def _since_start(state: State, rotation_id: str) -> list[dict[str, Any]]:
    journal = state.journal
    starts = [i for i, entry in enumerate(journal)
              if entry.get("action") == "start" and rotation_id in str(entry.get("detail", ""))]
    return journal[starts[-1]:] if starts else list(journal)


def touched(state: State, host: str) -> bool:
    """True when the journal or the record shows this rotation changed (or began to change) `host`."""
    rotation = RotationRecord(state.rotation)
    if any(entry.get("host") == host and not str(entry.get("action", "")).startswith(("confirmed", "rollback"))
           for entry in _since_start(state, rotation.id or "")):
        return True
    records = {**rotation.nodes(), **rotation.clients()}
    return any(key in records.get(host, {}) for key in STEP_KEYS)


def skipped_line(host: str, error: Exception) -> str:
    return (f"not rolled back: the journal shows this rotation never changed {host}, so there is nothing to restore "
            f"(it could not be reached: {error})")
