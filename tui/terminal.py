"""Whether the wizard has a screen to draw on: a terminal, or the driver `textual serve` gives it.

Without a terminal (`certrotate | cat`, `make demo | tee log`, cron) Textual's terminal driver
draws into a pipe nobody reads and waits for keys that never come: a blank, busy process deaf
to q. The wizard says so in one sentence and exits 2 (bad input) instead.
"""

from __future__ import annotations

import os
import sys

from core.errors import BadInput

NOT_A_TERMINAL = ("the wizard needs a terminal and {stream} is not one (a pipe or a file); run it in a terminal, "
                  "or use `certrotate status`, `advance` and `check` in scripts.")


def own_driver() -> bool:
    """True when the app is run with a driver of its own: `textual serve` sets TEXTUAL_DRIVER to its WebDriver."""
    return bool(os.environ.get("TEXTUAL_DRIVER"))


def require_terminal() -> None:
    """BadInput (exit 2) unless stdin and stdout are a terminal or the app brings its own driver."""
    if own_driver():
        return
    for name, stream in (("stdout", sys.stdout), ("stdin", sys.stdin)):
        try:
            interactive = stream is not None and stream.isatty()
        except (ValueError, OSError):  # closed
            interactive = False
        if not interactive:
            raise BadInput(NOT_A_TERMINAL.format(stream=name))
