"""The wizard's view of the state file: the engine's names, the gates' dates, the timeline."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path

from core.config.state import parse_state
from core.rotation import engine
from tui import view

INVENTORY = b"""
[cluster]
name = "prod"

[[nodes]]
name = "n1"
ssh_host = "10.0.0.1"
certs_dir = "/var/lib/cockroach/certs"

[[clients]]
user = "root"

[[clients]]
user = "app"
ssh_host = "app1"
certs_dir = "/etc/app/certs"
"""
STARTED = dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc)


def state_in(phase: str, **rotation):
    state = parse_state(INVENTORY, Path("/srv/certrotate.toml"))
    if phase != "idle":
        state.rotation = {"id": "r1", "kind": "ca", "phase": phase, "started": STARTED, **rotation}
    return state


def test_the_overview_loads_no_ssh_stack():
    """The wizard's first paint reads the state file and the kinds registry only: no paramiko, no engine."""
    code = "import sys, tui.view, tui.screens.start; print(sorted(m for m in ('paramiko', 'core.rotation.engine') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            cwd=Path(__file__).resolve().parent.parent)
    assert result.stdout.strip() == "[]"


def test_confirmation_keys_are_the_engines():
    for phase in engine.PHASES:
        state = state_in(phase)
        assert view.current_confirm_key(state) == engine.current_confirm_key(state), phase


def test_a_rotation_waiting_for_its_date_names_the_date_and_marks_trust_done():
    until = STARTED + dt.timedelta(days=30)
    state = state_in("wait", wait_until=until, trust_done_at=STARTED)
    step = view.next_step(state, STARTED + dt.timedelta(days=1))
    assert step.kind == "schedule" and step.until == until and "29 days left" in step.reason
    assert [s.status for s in view.timeline(state)] == ["done", "current", "pending", "pending"]
    assert view.timeline(state)[2].note == "due 2030-01-31"


def test_past_the_date_the_manual_client_is_what_the_rotation_waits_for():
    until = STARTED + dt.timedelta(days=30)
    state = state_in("wait", wait_until=until, clients={"app@app1": {"trust_confirmed": True}})
    step = view.next_step(state, until + dt.timedelta(minutes=1))
    assert step.kind == "confirm" and step.items == ("root",)
