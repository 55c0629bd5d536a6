"""Autopilot's pure parts and its edges that need no lab: policy, windows, decide, notify, metrics, install."""

from __future__ import annotations

import datetime as dt
import json
import random
import shlex
import shutil
import subprocess
import sys
import textwrap

import pytest

from core.autopilot import decide, install, metrics, notify, windows
from core.findings import WARN
from core.autopilot.decide import CertExpiry
from core.config.autopilot_policy import AutopilotPolicy, NotifyTarget
from core.config import state as state_mod
from core.diagnose.health import Finding
from core.errors import BadInput
from tests.webhook_support import WebhookReceiver

UTC = dt.timezone.utc
NOW = dt.datetime(2026, 12, 1, 12, tzinfo=UTC)  # a Tuesday
INVENTORY = textwrap.dedent("""\
    [cluster]
    name = "prod"
    profile = "postgres"
    node_lifetime_days = 900

    [[nodes]]
    name = "n1"
    ssh_host = "10.0.0.1"
    certs_dir = "/var/lib/cockroach/certs"

    [[clients]]
    user = "app"
    """)


def write(tmp_path, autopilot: str):
    path = tmp_path / "certrotate.toml"
    path.write_text(INVENTORY + "\n[autopilot]\n" + textwrap.dedent(autopilot))
    return path


# -- policy -----------------------------------------------------------------------------------------


def test_hand_written_policy_survives_the_tools_rewrite_and_defaults_stay_derived(tmp_path):
    path = write(tmp_path, """\
        ca_renew_before_days = 400   # early enough for trust + wait + leaf
        windows = ["0 2-5 * * 1-5", "30 22 * * 6"]
        notify = ["webhook:https://hooks.example/certrotate", "command:/usr/local/bin/page-oncall --team db"]
        """)
    state = state_mod.load(path)
    state.record("start", at=NOW, detail="something the tool records")
    state_mod.save(state)
    again = state_mod.load(path)
    assert again.policy == state.policy
    assert again.policy.windows == ("0 2-5 * * 1-5", "30 22 * * 6")
    assert again.policy.notify[1] == "command:/usr/local/bin/page-oncall --team db"
    assert "renew_before_days" not in path.read_text().split("[autopilot]")[1].split("\n\n")[0].replace("ca_renew", "")
    assert again.policy.node_renew_days(again.inventory.cluster) == 300  # a third of 900, still following it
    assert again.policy.ca_renew_days(again.inventory.cluster) == 400


def test_a_state_file_without_autopilot_keeps_having_none(tmp_path):
    path = tmp_path / "certrotate.toml"
    path.write_text(INVENTORY)
    state = state_mod.load(path)
    state_mod.save(state)
    assert state_mod.load(path).policy is None and "[autopilot]" not in path.read_text()


@pytest.mark.parametrize("table, sentence", [
    ('windows = ["0 25 * * *"]\n', "line 15: autopilot.windows entry 1: '0 25 * * *' is not a cron expression"),
    ("renew_before_days = 900\n", "line 15: autopilot.renew_before_days is 900, not shorter than the leaf lifetime"),
    ("ca_renew_before_days = 20\n", "line 15: autopilot.ca_renew_before_days is 20, not longer than leaf_delay_days"),
    ('notify = ["hooks.example"]\n', "line 15: autopilot.notify entry 1: 'hooks.example' is neither webhook:URL"),
    ('notify = ["webhook:ftp://x"]\n', "autopilot.notify entry 1: 'webhook:ftp://x' is not webhook:http"),
    ("window = 3\n", "line 15: autopilot.window is not a known field (a typo?)"),
    ("renew_before_days = \"60\"\n", "autopilot.renew_before_days must be a whole number"),
])
def test_a_bad_policy_is_one_sentence_naming_field_and_line(tmp_path, table, sentence):
    path = write(tmp_path, table)
    with pytest.raises(BadInput) as caught:
        state_mod.load(path)
    assert sentence in str(caught.value)
    assert str(caught.value).count(". ") == 0 or str(caught.value).endswith(".")


# -- windows ----------------------------------------------------------------------------------------


def test_a_window_opens_at_each_match_for_an_hour_and_adjacent_matches_join():
    nights = ("0 2-4 * * 1-5",)
    tuesday = dt.datetime(2026, 12, 1, tzinfo=UTC)
    assert windows.at(nights, 60, tuesday.replace(hour=1, minute=59)) == windows.WindowState(
        False, opens=tuesday.replace(hour=2))
    assert windows.at(nights, 60, tuesday.replace(hour=2, minute=30)).closes == tuesday.replace(hour=5)
    assert windows.at(nights, 60, tuesday.replace(hour=4, minute=59)).open
    friday_late = dt.datetime(2026, 12, 4, 5, 0, tzinfo=UTC)
    assert windows.at(nights, 60, friday_late).opens == dt.datetime(2026, 12, 7, 2, tzinfo=UTC)  # Monday
    assert windows.at((), 60, NOW) == windows.WindowState(True)


def test_jitter_stays_inside_the_open_window():
    now = dt.datetime(2026, 12, 1, 4, 50, tzinfo=UTC)
    state = windows.at(("0 2-4 * * *",), 60, now)  # closes 05:00: 600 s left
    delays = [windows.jitter_seconds(3600, state, now, random.Random(seed)) for seed in range(50)]
    assert max(delays) <= 300 and min(delays) >= 0
    assert windows.jitter_seconds(3600, windows.WindowState(False), now) == 0


# -- decide -----------------------------------------------------------------------------------------


def _state(tmp_path, autopilot="") -> state_mod.State:
    return state_mod.load(write(tmp_path, autopilot))


def _expiries(ca_days: float, node_days: float, client_days: float) -> list[CertExpiry]:
    return [CertExpiry("ca", "ca", "ca.crt", NOW + dt.timedelta(days=ca_days), "ab" * 32),
            CertExpiry("n1", "node", "node.crt", NOW + dt.timedelta(days=node_days), "cd" * 32),
            CertExpiry("app", "client", "client.app.crt", NOW + dt.timedelta(days=client_days), "ef" * 32)]


def test_nothing_due_says_when_the_first_certificate_falls_due(tmp_path):
    state = _state(tmp_path)
    decision = decide.decide(state, _expiries(3000, 800, 1500), state.policy, NOW)
    assert decision.action == "nothing" and decision.until == NOW + dt.timedelta(days=800 - 300)
    assert "node.crt of n1" in decision.reason


@pytest.mark.parametrize("days, kind, hosts", [
    ((3000, 200, 1500), "nodes", ("n1",)),  # node leaf within a third of 900 days
    ((3000, 800, 100), "clients", ("app",)),  # client leaf within a third of 1830 days
    ((3000, 200, 100), "nodes", ("n1",)),  # both: nodes first, clients on the next round
    ((100, 800, 1500), "ca", ("ca",)),  # CA within leaf_delay_days + 90
    ((250, 200, 1500), "ca", ("n1",)),  # leaves due, but a new leaf would be cut short by the CA
])
def test_what_is_due_starts_the_right_rotation(tmp_path, days, kind, hosts):
    state = _state(tmp_path)
    decision = decide.decide(state, _expiries(*days), state.policy, NOW)
    assert (decision.action, decision.kind, decision.hosts) == ("start", kind, hosts)


def test_a_rotation_in_flight_waits_for_its_date_and_stops_for_a_person_after_a_failure(tmp_path):
    state = _state(tmp_path)
    state.rotation = {"id": "r1", "kind": "ca", "phase": "wait", "wait_until": NOW + dt.timedelta(days=3)}
    assert decide.decide(state, [], state.policy, NOW).action == "wait"
    assert decide.decide(state, [], state.policy, NOW + dt.timedelta(days=4)).action == "advance"
    state.rotation["last_error"] = "n1 serves certificate 1234…, not its new one."
    blocked = decide.decide(state, [], state.policy, NOW + dt.timedelta(days=4))
    assert blocked.action == "blocked" and "run `certrotate advance` once" in blocked.reason


# -- notify -----------------------------------------------------------------------------------------


def _event(summary="Rotation r1 needs a person.") -> notify.Event:
    return notify.Event(key="r1:confirm:leaf_confirmed", event="confirmation_needed", cluster="prod", phase="retire",
                        summary=summary, what_to_do="Deliver, then confirm.", when=NOW, hosts=("app",),
                        rotation_id="r1", rotation_kind="ca", step="leaf_confirmed")


def test_the_webhook_gets_the_documented_json_once_per_event(tmp_path):
    state = _state(tmp_path)
    with WebhookReceiver() as hook:
        target = NotifyTarget("webhook", hook.url)
        assert notify.deliver(state, (target,), _event()) == (["webhook http://127.0.0.1"], [])
        assert notify.deliver(state, (target,), _event()) == ([], [])
    [body] = hook.bodies
    assert {"cluster", "event", "phase", "hosts", "when", "what_to_do", "summary", "rotation"} <= set(body)
    assert body["cluster"] == "prod" and body["hosts"] == ["app"] and body["when"] == NOW.isoformat()
    assert body["rotation"] == {"id": "r1", "kind": "ca"}


def test_an_unreachable_webhook_is_tried_again_and_pem_never_leaves(tmp_path):
    state = _state(tmp_path)
    with WebhookReceiver(status=500) as hook:
        target = NotifyTarget("webhook", hook.url)
        sent, failures = notify.deliver(state, (target,), _event())
        assert sent == [] and "HTTP 500" in failures[0]
        hook.status = 200
        leaked = _event("stopped: -----BEGIN PRIVATE KEY-----\nMIIE...\n-----END PRIVATE KEY-----")
        assert notify.deliver(state, (target,), leaked)[0] == ["webhook http://127.0.0.1"]
    assert b"BEGIN" not in hook.raw[-1] and hook.bodies[-1]["summary"] == "[PEM removed]"


def test_the_command_hook_reads_the_json_body_on_stdin(tmp_path):
    out = tmp_path / "got.json"
    script = tmp_path / "hook.py"
    script.write_text(f"import sys, os\nopen({str(out)!r}, 'w').write(os.environ['CERTROTATE_EVENT'] + '\\n' + "
                      "sys.stdin.read())\n")
    target = NotifyTarget("command", f"{shlex.quote(sys.executable)} {shlex.quote(str(script))}")
    state = _state(tmp_path)
    assert notify.deliver(state, (target,), _event())[1] == []
    event, body = out.read_text().split("\n", 1)
    assert event == "confirmation_needed" and json.loads(body)["what_to_do"] == "Deliver, then confirm."
    failing = NotifyTarget("command", "/bin/false")
    assert "exited 1" in notify.deliver(state, (failing,), _event())[1][0]


def test_an_apprise_url_reaches_a_real_receiver(tmp_path):
    state = _state(tmp_path)
    with WebhookReceiver() as hook:
        port = hook.server.server_address[1]
        target = NotifyTarget("apprise", f"json://127.0.0.1:{port}/apprise")
        assert notify.deliver(state, (target,), _event())[1] == []
    [body] = hook.bodies
    assert body["title"] == "certrotate prod: a person is needed" and "What to do: Deliver" in body["message"]


def test_an_apprise_url_apprise_does_not_know_is_bad_input():
    with pytest.raises(BadInput, match="apprise does not know"):
        notify.check_apprise_targets((NotifyTarget("apprise", "nosuchservice://x"),), "certrotate.toml")


# -- metrics and install --------------------------------------------------------------------------


def test_prometheus_text_parses_and_holds_a_sample_per_certificate(tmp_path):
    from prometheus_client.parser import text_string_to_metric_families

    state = _state(tmp_path)
    unreadable = CertExpiry("n2", "node", "node.crt", None, problem="connection refused")
    text = metrics.prometheus_text("prod", state, _expiries(3000, 200, 100) + [unreadable],
                                   [Finding(WARN, "expiry", "x")], 1).decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    expiry = families["certrotate_certificate_expiry_timestamp_seconds"].samples
    assert {(s.labels["host"], s.labels["file"]) for s in expiry} == {("n1", "node.crt"), ("app", "client.app.crt")}
    assert all(s.labels["cluster"] == "prod" for s in expiry)
    read = {s.labels["host"]: s.value for s in families["certrotate_certificate_read_success"].samples}
    assert read == {"n1": 1.0, "app": 1.0, "n2": 0.0}
    phase = {s.labels["phase"]: s.value for s in families["certrotate_rotation_phase"].samples}
    assert phase["idle"] == 1.0 and sum(phase.values()) == 1.0


def test_the_cron_line_runs_exactly_the_systemd_units_command(tmp_path):
    argv = install.command(["/opt/certrotate/bin/certrotate"], tmp_path / "my state" / "prod.toml", 300)
    units = install.systemd_units("prod", argv, tmp_path / "my state" / "prod.toml", user="cockroach")
    service = units["certrotate-autopilot-prod.service"]
    exec_start = next(line for line in service.splitlines() if line.startswith("ExecStart="))
    assert shlex.split(exec_start.removeprefix("ExecStart=")) == argv
    assert "User=cockroach" in service and "Type=oneshot" in service
    assert "OnCalendar=*:0/15" in units["certrotate-autopilot-prod.timer"]
    line = install.crontab_line(argv)
    assert line.startswith("*/15 * * * * ") and shlex.split(line.removeprefix("*/15 * * * * ")) == argv
    assert install.systemd_units("prod", argv, tmp_path / "s.toml", user=None)[
        "certrotate-autopilot-prod.service"].count("User=") == 0


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_analyze_verifies_the_units(tmp_path):
    program = tmp_path / "certrotate"
    program.write_text("#!/bin/sh\n")
    program.chmod(0o755)
    argv = install.command([str(program)], tmp_path / "certrotate.toml")
    for name, content in install.systemd_units("prod", argv, tmp_path / "certrotate.toml", user="root").items():
        (tmp_path / name).write_text(content)
    done = subprocess.run(["systemd-analyze", "verify", str(tmp_path / "certrotate-autopilot-prod.service"),
                           str(tmp_path / "certrotate-autopilot-prod.timer")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "certrotate-autopilot-prod" not in done.stderr, done.stderr
