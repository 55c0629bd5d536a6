"""Autopilot against the lab: real sshd + PostgreSQL nodes, a real webhook receiver on loopback.

Every pass is the real `certrotate autopilot` command; the operator's confirmations go through the
wizard's own path (tui.operations.confirm), as a person ticking the checklist would.
"""

from __future__ import annotations

import datetime as dt

from prometheus_client.parser import text_string_to_metric_families

from core import pki
from core.config import state as state_mod
from tests.rotation_support import certrotate, certs_in, edit_inventory, node_files, served
from tests.webhook_support import WebhookReceiver
from tui import operations


def _policy(lab, hook, cluster: dict, autopilot: dict) -> None:
    def change(data):
        data["cluster"].update(cluster)
        data["autopilot"] = {**autopilot, "notify": [f"webhook:{hook.url}"]}
    edit_inventory(lab, change)


def _fingerprints(lab) -> dict[str, str]:
    return {node.name: pki.sha256_fingerprint(served(lab, node)) for node in lab.nodes}


def test_leaves_due_are_renewed_only_inside_the_window_and_each_event_is_notified_once(lab):
    today = pki.utcnow().date()
    outside, inside = f"{today}T01:00:00Z", f"{today}T02:30:00Z"
    with WebhookReceiver() as hook:
        # The lab's leaves have 1830 days left: renewing 1900 days before expiry makes them due now.
        _policy(lab, hook, {"node_lifetime_days": 3000, "client_lifetime_days": 3000},
                {"renew_before_days": 1900, "windows": ["0 2 * * *"]})
        files_before, serving_before = node_files(lab), _fingerprints(lab)

        closed = certrotate(lab, "autopilot", "--now", outside)
        assert closed.returncode == 0, closed.stderr
        assert f"the next window opens {today} 02:00 UTC" in closed.stdout
        assert "start a nodes rotation" in closed.stdout
        assert node_files(lab) == files_before and state_mod.load(lab.state_path).phase == "idle"
        assert hook.bodies == []

        opened = certrotate(lab, "autopilot", "--now", inside)
        assert opened.returncode == 1, opened.stderr + opened.stdout  # a person is needed: the manual clients
        serving = _fingerprints(lab)
        assert all(serving[name] != serving_before[name] for name in serving)
        state = state_mod.load(lab.state_path)
        nodes_rotation = state.history[-1]
        assert nodes_rotation["kind"] == "nodes" and nodes_rotation["outcome"] == "done"
        assert all(served(lab, n).not_valid_after_utc - pki.utcnow() > dt.timedelta(days=2900) for n in lab.nodes)
        assert state.rotation["kind"] == "clients" and state.phase == "leaf"
        assert hook.events() == ["rotation_finished", "confirmation_needed"]
        finished, confirm = hook.bodies
        assert finished["rotation"] == {"id": nodes_rotation["id"], "kind": "nodes"}
        assert confirm["hosts"] == ["root", "app"] and "confirm" in confirm["what_to_do"]
        assert confirm["cluster"] == state.inventory.cluster.name and confirm["phase"] == "leaf"

        journal_length = len(state.journal)
        again = certrotate(lab, "autopilot", "--now", inside)
        assert again.returncode == 1 and "still waits for a person to confirm root, app" in again.stdout
        assert len(hook.bodies) == 2  # nothing repeats
        assert len(state_mod.load(lab.state_path).journal) == journal_length

        with state_mod.locked(lab.state_path):
            operations.confirm(lab.state_path, ["root", "app"])
        done = certrotate(lab, "autopilot", "--now", inside)
        assert done.returncode == 0, done.stderr + done.stdout
        clients_rotation = state_mod.load(lab.state_path).history[-1]
        assert clients_rotation["kind"] == "clients"
        assert hook.events() == ["rotation_finished", "confirmation_needed", "rotation_finished"]
        assert hook.bodies[-1]["rotation"]["id"] == clients_rotation["id"]

        quiet = certrotate(lab, "autopilot", "--now", inside)
        assert quiet.returncode == 0 and "Nothing is due" in quiet.stdout
        assert len(hook.bodies) == 3
    raw = b"".join(hook.raw)
    assert b"BEGIN" not in raw and b"PRIVATE" not in raw


def test_a_ca_rotation_runs_trust_wait_leaf_retire_driven_only_by_autopilot(lab):
    later = (pki.utcnow() + dt.timedelta(days=31)).strftime("%Y-%m-%dT%H:%MZ")
    with WebhookReceiver() as hook:
        # The lab's CA has 3660 days left; renewing 3700 days early makes it due, the new CA lives 7300.
        _policy(lab, hook, {"ca_lifetime_days": 7300}, {"ca_renew_before_days": 3700})
        old_ca = certs_in(lab.state_path.parent / "certs" / "ca.crt")[0]

        trust = certrotate(lab, "autopilot")
        assert trust.returncode == 0, trust.stderr + trust.stdout
        state = state_mod.load(lab.state_path)
        assert state.rotation["kind"] == "ca" and state.phase == "wait"
        for node in lab.nodes:
            assert [c.subject for c in certs_in(node.certs_dir / "ca.crt")][1] == old_ca.subject
        assert hook.events() == ["confirmation_needed"]
        assert hook.bodies[0]["step"] == "trust_confirmed" and hook.bodies[0]["hosts"] == ["root", "app"]
        assert certrotate(lab, "autopilot").returncode == 0 and len(hook.bodies) == 1  # still waiting: quiet

        with state_mod.locked(lab.state_path):
            operations.confirm(lab.state_path, ["root", "app"])
        leaf = certrotate(lab, "autopilot", "--now", later)
        assert leaf.returncode == 1, leaf.stderr + leaf.stdout
        assert state_mod.load(lab.state_path).phase == "retire"
        new_ca = certs_in(lab.nodes[0].certs_dir / "ca.crt")[0]
        assert all(served(lab, n).issuer == new_ca.subject for n in lab.nodes)
        assert hook.events() == ["confirmation_needed", "confirmation_needed"]
        assert hook.bodies[1]["step"] == "leaf_confirmed"

        with state_mod.locked(lab.state_path):
            operations.confirm(lab.state_path, ["root", "app"])
        retire = certrotate(lab, "autopilot", "--now", later)
        assert retire.returncode == 0, retire.stderr + retire.stdout
        for node in lab.nodes:
            assert [c.subject for c in certs_in(node.certs_dir / "ca.crt")] == [new_ca.subject]
        state = state_mod.load(lab.state_path)
        assert state.phase == "idle" and state.history[-1]["kind"] == "ca"
        assert hook.events()[-1] == "rotation_finished"

        quiet = certrotate(lab, "autopilot", "--now", later)
        assert quiet.returncode == 0 and "Nothing is due" in quiet.stdout and len(hook.bodies) == 3


def test_check_prometheus_holds_a_sample_per_node_and_client(lab):
    done = certrotate(lab, "check", "--format", "prometheus")
    assert done.returncode == 0, done.stderr
    families = {f.name: f for f in text_string_to_metric_families(done.stdout)}
    samples = families["certrotate_certificate_expiry_timestamp_seconds"].samples
    hosts = {s.labels["host"]: s for s in samples}
    assert set(hosts) == {"n1", "n2", "n3", "root", "app"}
    for node in lab.nodes:
        assert hosts[node.name].labels["file"] == "node.crt"
        assert hosts[node.name].value == served(lab, node).not_valid_after_utc.timestamp()
    assert {s.labels["phase"] for s in families["certrotate_rotation_phase"].samples if s.value} == {"idle"}


def test_install_prints_units_for_this_state_file_and_a_cron_line_with_the_same_command(lab):
    edit_inventory(lab, lambda data: data.update(autopilot={}))
    units = certrotate(lab, "autopilot", "install", "--systemd")
    assert units.returncode == 0, units.stderr
    assert f"--state {lab.state_path}" in units.stdout and "systemctl enable --now" in units.stdout
    exec_start = next(line for line in units.stdout.splitlines() if line.startswith("ExecStart="))
    cron = certrotate(lab, "autopilot", "install", "--cron")
    assert cron.returncode == 0, cron.stderr
    assert cron.stdout.splitlines()[0] == f"*/15 * * * * {exec_start.removeprefix('ExecStart=')}"
