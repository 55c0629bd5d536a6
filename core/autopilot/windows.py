"""Maintenance windows: cron expressions in UTC, each match opening the window for `window_minutes`.

"0 2-4 * * 1-5" with the default 60 minutes is open 02:00–05:00 UTC on weekdays: the window opens
at every match and stays open an hour, and matches an hour apart join into one window. No
expression at all means any time. cronsim does the cron arithmetic (it yields the matches
strictly after a given time).
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass

from cronsim import CronSim, CronSimError

UTC = dt.timezone.utc
LOOKAHEAD = dt.timedelta(days=400)  # a window further away than this is as good as never
LONGEST = dt.timedelta(days=1)  # a window that runs on longer is reported as closing a day from now


def explain(expression: str) -> str:
    """cronsim's own words for an expression ("At minute 0 past every hour from 2 through 4 …")."""
    try:
        return CronSim(expression, dt.datetime(2000, 1, 1, tzinfo=UTC)).explain()
    except (CronSimError, ValueError):
        return expression


@dataclass(frozen=True)
class WindowState:
    open: bool
    closes: dt.datetime | None = None  # when open: the end of the window (None: never, no windows set)
    opens: dt.datetime | None = None  # when closed: the next opening (None: none within LOOKAHEAD)


def _utc(now: dt.datetime) -> dt.datetime:
    aware = now.astimezone(UTC) if now.tzinfo else now.replace(tzinfo=UTC)
    return aware.replace(second=0, microsecond=0)


def _open_until(expression: str, length: dt.timedelta, now: dt.datetime) -> dt.datetime | None:
    """The end of the window of `expression` that holds `now`, or None when `now` is outside it."""
    matches = CronSim(expression, now - length)
    first = next(matches, None)
    if first is None or first > now:
        return None
    closes = first + length
    limit = now + LONGEST
    for match in matches:  # later matches that start before the window ends extend it
        if match > closes or closes > limit:
            break
        closes = match + length
    return closes


def _next_match(expression: str, now: dt.datetime) -> dt.datetime | None:
    match = next(CronSim(expression, now), None)
    return match if match is not None and match <= now + LOOKAHEAD else None


def at(windows: tuple[str, ...], minutes: int, now: dt.datetime) -> WindowState:
    """Is a window open at `now` (and until when), or when does the next one open?"""
    if not windows:
        return WindowState(True)
    now_minute = _utc(now)
    length = dt.timedelta(minutes=minutes)
    ends = [end for end in (_open_until(e, length, now_minute) for e in windows) if end is not None]
    if ends:
        return WindowState(True, closes=max(ends))
    openings = [m for m in (_next_match(e, now_minute) for e in windows) if m is not None]
    return WindowState(False, opens=min(openings) if openings else None)


def jitter_seconds(limit: float, window: WindowState, now: dt.datetime, rng: random.Random | None = None) -> float:
    """A random delay of at most `limit` seconds that still ends well inside the open window.

    Many clusters' timers fire on the same minute; spreading the work keeps them from all reloading
    nodes at once, as step-ca's renewer does. Half the time left in the window is the most it may take.
    """
    if limit <= 0 or not window.open:
        return 0.0
    ceiling = float(limit)
    if window.closes is not None:
        ceiling = min(ceiling, max(0.0, (window.closes - now).total_seconds() / 2))
    return (rng or random.Random()).uniform(0, ceiling)


def describe(windows: tuple[str, ...], minutes: int) -> str:
    if not windows:
        return "any time (no windows set)"
    return "; ".join(f"{e} UTC" for e in windows) + (f", {minutes} min each" if minutes != 60 else "")
