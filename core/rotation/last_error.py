"""`last_error` in the rotation record: set by every failed step, cleared by the next run that succeeds.

Monitoring (`status --json`, `check`) and the wizard's Next panel read it, so it must never
be stale: each failure, whatever raised it, names the step and carries the failure's own
sentence (which names the host and the cause), with the time it happened.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from core import pki
from core.errors import CertRotateError

if TYPE_CHECKING:
    from core.rotation.context import Run

def clear(run: Run) -> None:
    """A new run starts clean; the record is saved with the run's first progress (a dry run saves nothing)."""
    run.record_view().clear_failure()


def remember(run: Run, step: str, error: CertRotateError) -> None:
    """Record the failure of `step` in the state file (not for a dry run, which changes nothing)."""
    if run.dry_run or not run.state.rotation:
        return
    with run.lock:
        run.record_view().note_failure(str(error), step, pki.utcnow())
    run.record(f"{step}: failed", detail=str(error))
    try:
        run.save()
    except CertRotateError:
        pass  # the state file cannot be written: the failure itself is still raised to the operator
