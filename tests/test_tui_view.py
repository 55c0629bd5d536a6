"""The wizard's view of the state file: the engine's names, the gates' dates, the timeline."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

from core import pki
from core.config.state import parse_state
from core.rotation import engine
from core.rotation.kinds import recover
from tui import view

REPO = Path(__file__).resolve().parent.parent

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
    code = ("import sys, tui.view, tui.screens.start, tui.screens.home; "
            "print(sorted(m for m in ('paramiko', 'core.rotation.engine', 'cryptography') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert result.stdout.strip() == "[]"


def test_certrotate_alone_goes_to_the_wizard_without_the_subcommands_machinery():
    """`certrotate --state FILE` parses without the subcommands' modules: the wizard does not wait for them.

    Its stdout is a pipe here, so the wizard stops at its first check (it needs a terminal)."""
    code = ("import sys; from tui import cli; code = cli.main(['--state', 'certrotate.toml']); "
            "print(code, sorted(m for m in ('paramiko', 'core.rotation.engine', 'cryptography', 'tui.rotation_cli') "
            "if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert result.stdout.strip() == "2 []"
    assert "the wizard needs a terminal" in result.stderr


# The real wizard, headless, on `argv[1]`: what is loaded when Textual hands it to the auto-pilot (its first
# frame, as bench/bench_startup.py times it), then every step the next-step panel showed until the first
# host refresh is done. The panel's watcher is wrapped only to note each step it is given.
FIRST_FRAME = """
import json, sys
from tui.app import CertRotateApp
from tui.widgets.next_step import NextStepPanel

shown, seen, report = NextStepPanel.watch_step, [], {}

def noting(panel, step):
    seen.append(step.title if step else None)
    shown(panel, step)

NextStepPanel.watch_step = noting

async def first_frame(pilot):
    report["loaded"] = sorted(m for m in ("cryptography", "paramiko", "core.rotation.engine") if m in sys.modules)
    report["screen"] = type(pilot.app.screen).__name__
    from tests.tui_helpers import home_ready  # it loads the test lab (cryptography): only now

    await home_ready(pilot)
    report["steps"] = [title for title in seen if title]
    pilot.app.exit()

CertRotateApp(sys.argv[1]).run(headless=True, size=(140, 45), auto_pilot=first_frame)
print(json.dumps(report))
"""


def test_the_first_frame_needs_no_pki_and_never_claims_an_untrue_next_step(tmp_path):
    """No cryptography or paramiko before the first frame; an expired cluster is never told to start a rotation.

    The CA expired yesterday, and nothing listens where the nodes are: the wizard can only learn that the
    cluster is down from its local CA, which it reads after the first frame. Until then the next-step panel
    says it is checking; then it leads to the recovery."""
    now = pki.utcnow()
    expired = pki.issue_ca(key_type="ecdsa-p256", now=now - dt.timedelta(days=3), lifetime=dt.timedelta(days=2))
    (tmp_path / "certs").mkdir()
    (tmp_path / "certs" / "ca.crt").write_bytes(expired.cert_pem)
    state = tmp_path / "certrotate.toml"
    state.write_text('[cluster]\nname = "prod"\n' + "".join(
        f'\n[[nodes]]\nname = "n{i}"\nssh_host = "127.0.0.2"\nssh_port = 1\nsql_addr = "127.0.0.2:1"\n'
        f'certs_dir = "/var/lib/cockroach/certs"\n' for i in (1, 2)) + '\n[[clients]]\nuser = "root"\n')
    result = subprocess.run([sys.executable, "-c", FIRST_FRAME, str(state)], capture_output=True, text=True,
                            cwd=REPO, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["screen"] == "HomeScreen"
    assert report["loaded"] == [], f"loaded before the first frame: {report['loaded']}"
    recover = "Recover the cluster: its certificates have expired"
    assert report["steps"][0] in (view.CHECKING_EXPIRY.title, recover), report["steps"]
    assert report["steps"][-1] == recover and "Start a rotation" not in report["steps"], report["steps"]


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


def test_an_idle_cluster_is_checked_before_the_overview_names_its_next_step():
    state = state_in("idle")
    assert view.next_step(state, STARTED) == view.CHECKING_EXPIRY  # its expiry not judged yet
    assert view.next_step(state, STARTED, None).title == "Start a rotation"
    down = recover.Recovery(recover.NEW_CA, "The CA expired on 2029-12-31 00:00 UTC, …")
    step = view.next_step(state, STARTED, down)
    assert step.title == "Recover the cluster: its certificates have expired" and step.reason == down.why


def test_each_host_shows_its_last_journaled_action_from_a_written_journal(tmp_path):
    """The host table's last action per host: the newest entry naming it, read back from a saved file."""
    from core.config import state as state_mod

    path = tmp_path / "certrotate.toml"
    path.write_bytes(INVENTORY)
    state = state_in("trust")
    state.path = path
    for minute, (action, host) in enumerate([("start", ""), ("trust: write", "n1"), ("trust: write", "app@app1"),
                                             ("trust: verify", "n1"), ("gate", "")]):
        state.record(action, at=STARTED + dt.timedelta(minutes=minute), host=host)
    state_mod.save(state)

    rows = {row.key: row.last_action for row in view.recorded_hosts(state_mod.load(path))}
    assert rows == {"n1": "01-01 00:03 trust: verify", "app@app1": "01-01 00:02 trust: write", "root": ""}
