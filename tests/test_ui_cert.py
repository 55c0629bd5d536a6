"""A bring-your-own DB Console certificate (`certrotate start ui`): checks first, then node by node.

The pure checks run without a network; the rest drives the real CLI against a lab whose
nodes each run a console (core.lab.console: direct TLS on http_addr, ui.crt else node.crt,
reloaded on SIGHUP), checked with a TLS client that trusts only the organisation's CA.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import ssl

import pytest

from core import pki
from core.config import state as state_mod
from core.config.inventory import NodeConfig
from core.remote.probes import probe_http, probe_sql, wait_for_fingerprint
from core.findings import first_problem
from core.rotation.kinds.ui_pair import check_pair
from tests.rotation_support import certrotate, edit_inventory, node_files, set_node_reload
from tests.ui_support import OrgCA, browse_console, write_ui_files

NOW = pki.utcnow()


@pytest.fixture(scope="module")
def org() -> OrgCA:
    return OrgCA()


def nodes(*hosts: str) -> list[NodeConfig]:
    return [NodeConfig(ssh_host=h, name=f"n{i}", certs_dir="/c", http_addr=f"{h}:8080") for i, h in enumerate(hosts, 1)]


def check(org: OrgCA, leaf: pki.Issued, *, key_pem: bytes | None = None, key_mode: int | None = 0o600,
          on: list[NodeConfig] | None = None):
    return check_pair(org.chain_pem(leaf), key_pem or leaf.key_pem(), cert_source="ui/ui.crt", key_source="ui/ui.key",
                      key_mode=key_mode, nodes=on or nodes("10.0.0.1", "10.0.0.2"), now=NOW)


# -- the checks, without a network --------------------------------------------------------------


def test_a_good_pair_passes_every_check_and_names_each_node_covered(org):
    findings = check(org, org.issue_ui(["10.0.0.1", "10.0.0.2"]))
    assert first_problem(findings) is None
    assert [f.message for f in findings if f.check == "san"] == ["n1: 10.0.0.1 is covered.", "n2: 10.0.0.2 is covered."]
    assert "1 intermediate" in next(f.message for f in findings if f.check == "pem")


def test_a_wildcard_covers_one_label_only(org):
    leaf = org.issue_ui(["*.db.example.org"])
    findings = check(org, leaf, on=nodes("n1.db.example.org", "a.n2.db.example.org"))
    assert [f.ok for f in findings if f.check == "san"] == [True, False]


def test_a_node_the_sans_miss_is_named(org):
    problem = first_problem(check(org, org.issue_ui(["10.0.0.1"])))
    assert problem.startswith("ui/ui.crt does not cover n2's http_addr host 10.0.0.2")


def test_a_key_of_another_certificate_is_refused(org):
    other = org.issue_ui(["10.0.0.1"])
    problem = first_problem(check(org, org.issue_ui(["10.0.0.1", "10.0.0.2"]), key_pem=other.key_pem()))
    assert problem == "ui/ui.key does not match ui/ui.crt: they are not a key pair."


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604])
def test_a_key_others_can_read_is_refused_with_chmod_600(org, mode):
    problem = first_problem(check(org, org.issue_ui(["10.0.0.1", "10.0.0.2"]), key_mode=mode))
    assert f"(mode {mode:04o})" in problem and "`chmod 600 ui/ui.key`" in problem


def test_expired_and_not_yet_valid_certificates_are_refused(org):
    expired = org.issue_ui(["10.0.0.1", "10.0.0.2"], now=NOW - dt.timedelta(days=10), lifetime=dt.timedelta(days=2))
    assert "expired on" in first_problem(check(org, expired))
    future = check_pair(org.chain_pem(org.issue_ui(["10.0.0.1", "10.0.0.2"])), b"", cert_source="c", key_source="k",
                        key_mode=None, nodes=[], now=NOW - dt.timedelta(days=30))
    assert "is not a readable PEM private key" in first_problem(future)


def test_a_client_only_certificate_is_refused_for_lacking_server_auth(org):
    client = pki.issue_client(org.intermediate, "someone", key_type="ecdsa-p256", lifetime=dt.timedelta(days=30))
    findings = check_pair(client.cert_pem, client.key_pem(), cert_source="c", key_source="k", key_mode=0o600,
                          nodes=[], now=NOW)
    assert "lacks the serverAuth extended key usage" in first_problem(findings)


def test_intermediates_out_of_order_are_refused(org):
    leaf = org.issue_ui(["10.0.0.1"])
    findings = check_pair(org.intermediate.cert_pem + leaf.cert_pem, org.intermediate.key_pem(), cert_source="c",
                          key_source="k", key_mode=None, nodes=[], now=NOW)
    assert first_problem(findings) is not None and "intermediates in order" in first_problem(findings)


def test_a_node_without_http_addr_cannot_be_verified(org):
    no_http = dataclasses.replace(nodes("10.0.0.1")[0], http_addr=None)
    problem = first_problem(check(org, org.issue_ui(["10.0.0.1"]), on=[no_http]))
    assert problem.startswith("n1 has no http_addr in the inventory, so the UI certificate it serves cannot be verified")


def test_the_inventory_takes_both_ui_paths_or_neither():
    from pathlib import Path

    from core.config.state import parse_state
    from core.errors import BadInput

    head = b'[cluster]\nname = "prod"\n'
    node = b'[[nodes]]\nname = "n1"\nssh_host = "h"\ncerts_dir = "/c"\n'
    both = parse_state(head + b'ui_cert = "ui/ui.crt"\nui_key = "ui/ui.key"\n' + node, Path("/srv/c.toml"))
    assert (both.inventory.cluster.ui_cert, both.inventory.cluster.ui_key) == ("ui/ui.crt", "ui/ui.key")
    with pytest.raises(BadInput, match=r"line 1: cluster.ui_key is missing: ui_cert and ui_key name a certificate"):
        parse_state(head + b'ui_cert = "ui/ui.crt"\n' + node, Path("/srv/c.toml"))
    with pytest.raises(BadInput, match=r"line 4: cluster.ui_key must be a string"):
        parse_state(head + b'ui_cert = "ui/ui.crt"\nui_key = 5\n' + node, Path("/srv/c.toml"))


# -- on a lab cluster with consoles ------------------------------------------------------------------


@pytest.fixture
def console_lab(lab_factory):
    lab = lab_factory(3, console=True)
    edit_inventory(lab, lambda data: data["cluster"].update(verify_timeout_seconds=5))
    return lab


def lab_ui(org: OrgCA, lab) -> pki.Issued:
    return org.issue_ui([n.address for n in lab.nodes])


def disk_fingerprint(node, name: str) -> str:
    return pki.sha256_fingerprint(x509_load(node.certs_dir / name))


def x509_load(path):
    from cryptography import x509
    return x509.load_pem_x509_certificates(path.read_bytes())[0]


def test_every_node_serves_the_new_ui_certificate_to_a_browser_and_sql_keeps_node_crt(console_lab, org):
    lab = console_lab
    leaf = lab_ui(org, lab)
    write_ui_files(lab, org.chain_pem(leaf), leaf.key_pem())
    for node in lab.nodes:  # before: the console serves node.crt, which the org CA does not vouch for
        with pytest.raises(ssl.SSLCertVerificationError):
            browse_console(node, org.root)

    started = certrotate(lab, "start", "ui")
    assert started.returncode == 0, started.stderr
    dry = certrotate(lab, "advance", "--dry-run")
    assert "ui.crt" in dry.stdout and "over direct TLS" in dry.stdout
    advanced = certrotate(lab, "advance")
    assert advanced.returncode == 0, advanced.stderr + advanced.stdout

    for node in lab.nodes:
        served, response = browse_console(node, org.root)
        assert served == leaf.certificate and b"200 OK" in response.splitlines()[0]
        assert probe_sql(node.sql_addr).fingerprint == disk_fingerprint(node, "node.crt")
        assert (node.certs_dir / "ui.key").stat().st_mode & 0o777 == 0o600
        assert (node.certs_dir / "ui.crt").stat().st_mode & 0o777 == 0o644
    status = json.loads(certrotate(lab, "status", "--json").stdout)
    assert status["phase"] == "idle"
    assert (status["history"][-1]["kind"], status["history"][-1]["outcome"]) == ("ui", "done")


def test_the_rollout_goes_canary_first(console_lab, org):
    lab = console_lab
    leaf = lab_ui(org, lab)
    write_ui_files(lab, org.chain_pem(leaf), leaf.key_pem())
    assert certrotate(lab, "start", "ui").returncode == 0
    advanced = certrotate(lab, "advance")
    oks = [line.split()[0] for line in advanced.stdout.splitlines() if " ok " in line]
    assert oks == ["n1", "n2", "n3"]


def _mismatched_key(org, lab):
    leaf = lab_ui(org, lab)
    return org.chain_pem(leaf), org.issue_ui(["10.9.9.9"]).key_pem(), 0o600, "does not match"


def _san_misses_n3(org, lab):
    leaf = org.issue_ui([n.address for n in lab.nodes[:2]])
    return org.chain_pem(leaf), leaf.key_pem(), 0o600, f"does not cover n3's http_addr host {lab.nodes[2].address}"


def _world_readable_key(org, lab):
    leaf = lab_ui(org, lab)
    return org.chain_pem(leaf), leaf.key_pem(), 0o644, "chmod 600 ui/ui.key"


def _expired(org, lab):
    leaf = org.issue_ui([n.address for n in lab.nodes], now=NOW - dt.timedelta(days=10), lifetime=dt.timedelta(days=2))
    return org.chain_pem(leaf), leaf.key_pem(), 0o600, "expired on"


def _malformed_pem(org, lab):
    leaf = lab_ui(org, lab)
    return org.chain_pem(leaf)[:200], leaf.key_pem(), 0o600, "truncated or malformed PEM"


@pytest.mark.parametrize("bad", [_mismatched_key, _san_misses_n3, _world_readable_key, _expired, _malformed_pem],
                         ids=lambda f: f.__name__.strip("_"))
def test_a_bad_pair_is_refused_with_one_sentence_and_nothing_is_uploaded(console_lab, org, bad):
    lab = console_lab
    cert_pem, key_pem, mode, expected = bad(org, lab)
    write_ui_files(lab, cert_pem, key_pem, key_mode=mode)
    before = node_files(lab)
    result = certrotate(lab, "start", "ui")
    assert result.returncode == 2
    assert expected in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr and "PRIVATE KEY" not in result.stderr
    assert node_files(lab) == before
    assert json.loads(certrotate(lab, "status", "--json").stdout)["phase"] == "idle"


def test_nodes_without_http_addr_are_refused_at_start_and_at_advance(console_lab, org):
    lab = console_lab
    leaf = lab_ui(org, lab)
    write_ui_files(lab, org.chain_pem(leaf), leaf.key_pem())
    assert certrotate(lab, "start", "ui").returncode == 0
    state = state_mod.load(lab.state_path)  # the state file now has certrotate's record: edit it through core
    nodes_now = tuple(dataclasses.replace(n, http_addr=None) if n.name == "n3" else n for n in state.inventory.nodes)
    state.inventory = dataclasses.replace(state.inventory, nodes=nodes_now)
    state_mod.save(state)
    before = node_files(lab)
    result = certrotate(lab, "advance")
    assert result.returncode == 2 and "n3 has no http_addr" in result.stderr
    assert node_files(lab) == before
    assert certrotate(lab, "rollback", "--yes").returncode == 0
    refused = certrotate(lab, "start", "ui")
    assert refused.returncode == 2 and "cannot be verified" in refused.stderr


def test_a_node_whose_console_keeps_its_old_certificate_is_restored_and_the_rotation_stops(console_lab, org):
    lab = console_lab
    n1, n2, n3 = lab.nodes
    leaf = lab_ui(org, lab)
    write_ui_files(lab, org.chain_pem(leaf), leaf.key_pem())
    set_node_reload(lab, "n2", f"{n2.postgres.reload_command}")  # signals PostgreSQL, not the console
    untouched = node_files(lab)["n3"]
    assert certrotate(lab, "start", "ui").returncode == 0
    result = certrotate(lab, "advance")
    assert result.returncode == 1
    assert result.stderr.startswith("certrotate: n2 ") and "previous UI certificate was restored" in result.stderr
    assert "rotation is stopped" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert browse_console(n1, org.root)[0] == leaf.certificate                  # the canary went first
    assert not (n2.certs_dir / "ui.crt").exists() and not (n2.certs_dir / "ui.key").exists()
    assert probe_http(n2.http_addr).fingerprint == disk_fingerprint(n2, "node.crt")
    assert node_files(lab)["n3"] == untouched
    status = json.loads(certrotate(lab, "status", "--json").stdout)
    assert status["phase"] == "leaf" and status["nodes"]["n2"]["leaf"] == "failed"
    restored = [e["detail"] for e in state_mod.load(lab.state_path).journal if e["action"] == "ui certificate restored"]
    assert restored == ["new ui.crt, ui.key removed"]  # n2 had no ui files: the new ones went, nothing came back


def test_rollback_of_a_half_done_rollout_gives_every_console_its_previous_certificate(console_lab, org):
    lab = console_lab
    leaf = lab_ui(org, lab)
    write_ui_files(lab, org.chain_pem(leaf), leaf.key_pem())
    set_node_reload(lab, "n3", lab.nodes[2].postgres.reload_command)
    assert certrotate(lab, "start", "ui").returncode == 0
    assert certrotate(lab, "advance").returncode == 1
    assert browse_console(lab.nodes[1], org.root)[0] == leaf.certificate

    result = certrotate(lab, "rollback", "--yes")
    assert result.returncode == 0, result.stderr
    for node in lab.nodes:
        assert probe_http(node.http_addr).fingerprint == disk_fingerprint(node, "node.crt")
        assert not (node.certs_dir / "ui.crt").exists()
        assert not (node.certs_dir / ".certrotate-backup").exists() or not any((node.certs_dir / ".certrotate-backup").iterdir())
    status = json.loads(certrotate(lab, "status", "--json").stdout)
    assert status["phase"] == "idle" and status["history"][-1]["outcome"] == "rolled back"


def test_renewing_a_ui_certificate_restores_the_previous_one_on_a_node_that_fails(console_lab, org):
    lab = console_lab
    n1, n2, n3 = lab.nodes
    first = lab_ui(org, lab)
    write_ui_files(lab, org.chain_pem(first), first.key_pem())
    assert certrotate(lab, "start", "ui").returncode == 0
    assert certrotate(lab, "advance").returncode == 0
    renewal = lab_ui(org, lab)                                               # 90 days later: the renewal
    write_ui_files(lab, org.chain_pem(renewal), renewal.key_pem(), in_inventory=False)  # same paths
    set_node_reload(lab, "n2", n2.postgres.reload_command)
    assert certrotate(lab, "start", "ui").returncode == 0
    result = certrotate(lab, "advance")
    assert result.returncode == 1 and "previous UI certificate was restored and it serves it again" in result.stderr
    assert [browse_console(n, org.root)[0] for n in lab.nodes] == [renewal.certificate, first.certificate,
                                                                   first.certificate]
    text = certrotate(lab, "status").stdout
    assert "UI certificate CN=console.example.org" in text and "node n2: leaf=failed" in text
    restored = [e["detail"] for e in state_mod.load(lab.state_path).journal if e["action"] == "ui certificate restored"]
    assert restored == ["previous ui.crt, ui.key back in place"]


def test_a_console_that_does_not_answer_gets_nothing_uploaded(console_lab, org):
    lab = console_lab
    leaf = lab_ui(org, lab)
    write_ui_files(lab, org.chain_pem(leaf), leaf.key_pem())
    assert certrotate(lab, "start", "ui").returncode == 0
    lab.nodes[1].console.stop()
    before = node_files(lab)["n2"]
    result = certrotate(lab, "advance")
    assert result.returncode == 1
    assert f"n2: its DB Console does not answer TLS on {lab.nodes[1].http_addr}" in result.stderr
    assert "nothing was uploaded to it" in result.stderr
    assert node_files(lab)["n2"] == before


def test_check_names_a_console_certificate_about_to_expire(console_lab, org):
    lab = console_lab
    n1 = lab.nodes[0]
    short = org.issue_ui([n1.address], lifetime=dt.timedelta(days=5))
    n1.install_files({"ui.crt": org.chain_pem(short), "ui.key": short.key_pem()})
    n1.reload()
    assert wait_for_fingerprint(n1.http_addr, short.fingerprint, postgres_preamble=False) == short.fingerprint
    result = certrotate(lab, "check")
    assert result.returncode == 2
    assert f"CRITICAL: node n1's DB Console on {n1.http_addr} serves a certificate that expires on" in result.stdout
    assert "n2's DB Console" not in result.stdout


def test_a_cert_without_its_key_on_the_command_line_is_refused(console_lab, org):
    leaf = lab_ui(org, console_lab)
    write_ui_files(console_lab, org.chain_pem(leaf), leaf.key_pem())
    result = certrotate(console_lab, "start", "ui", "--cert", "ui/ui.crt")
    assert result.returncode == 2 and "Give both the UI certificate and its key" in result.stderr
    wrong_kind = certrotate(console_lab, "start", "nodes", "--cert", "ui/ui.crt", "--key", "ui/ui.key")
    assert wrong_kind.returncode == 2 and "they go with `start ui` only" in wrong_kind.stderr


def test_the_demos_example_ui_certificate_installs_and_a_browser_trusting_org_ca_crt_accepts_it(lab_factory):
    from core.lab.org_ca import write_example_ui_pair

    lab = lab_factory(2, console=True)
    org = write_example_ui_pair(lab)
    assert (lab.operator_dir / "ui" / "ui.key").stat().st_mode & 0o777 == 0o600
    assert (lab.operator_dir / "ui" / "org-ca.crt").read_bytes() == org.root.cert_pem
    for args in (("start", "ui"), ("advance",)):
        result = certrotate(lab, *args)
        assert result.returncode == 0, result.stderr
    for node in lab.nodes:
        served, _ = browse_console(node, org.root)
        assert served.subject.rfc4514_string() == "CN=console.example.org,O=Cockroach"
