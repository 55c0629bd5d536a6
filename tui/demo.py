"""`certrotate demo [--nodes N] [--expired]`: a throwaway cluster on loopback and the wizard opened on it.

The lab (core.lab: an sshd, a PostgreSQL and a DB Console stand-in per node, an SSH-delivered
client `app` and a manually delivered client `root`, and an example UI certificate from an
example organisational CA in operator/ui/) is stopped when the wizard quits, and also on SIGINT, SIGTERM
and SIGHUP: the first asks the wizard to quit, so the terminal is restored and the lab
stopped on the normal path; outside the wizard (and on a second signal) they become
SystemExit, which unwinds through the same `finally`.

A demo killed with SIGKILL cannot clean up; the next `certrotate demo` (any lab start, in fact)
does: core.lab.scratch sweeps the temp and /dev/shm dirs whose lock nobody holds and stops the
servers listed in them by their recorded pids (tests/test_tui_demo.py kills one to prove it).
"""

from __future__ import annotations

import signal
import sys
from types import FrameType

DEMO_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class _Signals:
    """Signal handling for the demo's lifetime; knows the running app, if any."""

    def __init__(self) -> None:
        self.app = None
        self.received: int | None = None
        self._previous: dict[int, object] = {}

    def __enter__(self) -> "_Signals":
        for signum in DEMO_SIGNALS:
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc_info: object) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        first = self.received is None
        self.received = signum
        app = self.app
        loop = getattr(app, "_loop", None) if app is not None else None
        if first and app is not None and app.is_running and loop is not None and loop.is_running():
            loop.call_soon_threadsafe(app.exit, None, 128 + signum)
            return
        raise SystemExit(128 + signum)


def run_demo(nodes: int = 3, *, expired: bool = False) -> int:
    import datetime as dt

    from core import pki
    from core.lab import start_lab
    from core.lab.org_ca import write_example_ui_pair
    from tui.app import CertRotateApp

    with _Signals() as signals:
        print(f"certrotate demo: starting a {nodes}-node cluster on loopback (sshd + PostgreSQL per node)…",
              file=sys.stderr, flush=True)
        # --expired: the 3 a.m. outage, dated so that the CA and every leaf ended 12 hours ago.
        dates = ({"issued_at": pki.utcnow() - dt.timedelta(days=2), "ca_lifetime": dt.timedelta(hours=36)}
                 if expired else {})
        lab = start_lab(None, nodes, ssh_clients=("app",), console=True, **dates)
        try:
            write_example_ui_pair(lab)  # s then 5 rehearses installing a DB Console certificate
            print(lab.summary(), file=sys.stderr, flush=True)
            note = (f"Demo cluster on loopback ({lab.block}0/24); quitting stops it. "
                    + ("Its certificates expired 12 hours ago: rehearse the recovery." if expired else
                       "Press t while the rotation waits to time travel."))
            app = CertRotateApp(lab.state_path, demo=True, demo_note=note)
            signals.app = app
            app.run()
            if signals.received is not None:
                raise SystemExit(128 + signals.received)
            return app.return_code or 0
        finally:
            signals.app = None
            lab.stop()
            print("certrotate demo: cluster stopped.", file=sys.stderr, flush=True)
