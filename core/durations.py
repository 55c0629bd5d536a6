"""Go-style durations as `cockroach cert --lifetime` takes them (`87840h`, `720h30m`)."""

from __future__ import annotations

import datetime as dt
import re

from core.errors import BadInput

_PART = re.compile(r"(\d+(?:\.\d+)?)(h|m|s|ms)")
_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


def parse_go_duration(text: str) -> dt.timedelta:
    text = text.strip()
    pos, seconds = 0, 0.0
    for match in _PART.finditer(text):
        if match.start() != pos:
            break
        seconds += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if not text or pos != len(text):
        raise BadInput(f"--lifetime {text!r} is not a duration like 87840h or 720h30m.")
    if seconds <= 0:
        raise BadInput("--lifetime must be positive.")
    return dt.timedelta(seconds=seconds)


def format_hours(delta: dt.timedelta) -> str:
    return f"{int(delta.total_seconds() // 3600)}h"
