"""One finding: the result of one check, as `doctor`, `check` and the UI-certificate checks report it.

A finding is a level, the name of the check and one sentence; nothing else, so that the
CLI prints it as a line, the wizard shows it in a table and monitoring reads its exit code
from the same value. It lives beside `core.errors`, below every layer, so that any module
that checks something can return findings without importing the diagnose package.

Levels: OK (passed), WARN (works, but look at it), FAIL (a client or browser will refuse
it, or a step would fail), SKIP (not checked, the sentence says why). A finding never
carries key material.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import ClassVar, Iterable

OK, WARN, FAIL, SKIP = "OK", "WARN", "FAIL", "SKIP"


@dataclass(frozen=True)
class Finding:
    """A check's result: its level, the check's name and one sentence (see the module's docstring)."""

    level: str  # OK | WARN | FAIL | SKIP
    check: str  # what was checked, e.g. "chain", "expiry", "hostname", "san"
    message: str
    node: str | None = None  # the node the check was about, when it was about one

    EXIT: ClassVar[dict[str, int]] = {OK: 0, SKIP: 0, WARN: 1, FAIL: 2}

    @property
    def ok(self) -> bool:
        """Passed (a SKIP did not run; a WARN or a FAIL wants the operator's attention)."""
        return self.level == OK

    @property
    def line(self) -> str:
        return f"{self.level:<4} {self.check}: {self.message}"


def exit_code(findings: Iterable[Finding]) -> int:
    """0 all fine, 1 a warning, 2 a failure: the exit codes of `certrotate check` and `doctor`."""
    return max((Finding.EXIT[f.level] for f in findings), default=0)


def first_problem(findings: Iterable[Finding]) -> str | None:
    """The sentence of the first failure, or None when nothing failed."""
    return next((f.message for f in findings if f.level == FAIL), None)


# -- expiry -------------------------------------------------------------------------------------


def expiry_level(not_after: dt.datetime, now: dt.datetime, *, warn_days: int, fail_days: int = 0) -> str:
    """FAIL when expired or within `fail_days`, WARN within `warn_days`, else OK (both bounds inclusive)."""
    left = not_after - now
    if left <= dt.timedelta(0) or left <= dt.timedelta(days=fail_days):
        return FAIL
    if left <= dt.timedelta(days=warn_days):
        return WARN
    return OK


def expiry_finding(what: str, not_after: dt.datetime, now: dt.datetime, *, warn_days: int,
                   fail_days: int = 0) -> Finding:
    """How long `what` is still valid, judged against the warn and fail thresholds (days).

    `doctor` fails only what has expired (fail_days 0); `check` also fails what expires
    within its critical days, so cron can page before the outage rather than after.
    """
    left = not_after - now
    level = expiry_level(not_after, now, warn_days=warn_days, fail_days=fail_days)
    if left <= dt.timedelta(0):
        return Finding(FAIL, "expiry", f"{what} expired on {not_after:%Y-%m-%d}.")
    if level != OK:
        return Finding(level, "expiry", f"{what} expires on {not_after:%Y-%m-%d}, in {left.days} days.")
    return Finding(OK, "expiry", f"{what} is valid until {not_after:%Y-%m-%d} ({left.days} days).")
