"""Break-glass: a cluster whose certificates have expired comes back with `start recover` + `advance --yes`.

The labs here are dated in the past (core.lab's `issued_at` and lifetimes): their CA, node and
client certificates expired before the test started, so every verify-full client is refused,
as it would be at 3 a.m. on a real cluster. PostgreSQL keeps serving the expired certificate,
as CockroachDB does.
"""

from __future__ import annotations

import datetime as dt
import json

import psycopg
import pytest

from core import pki
from core.errors import BadInput
from core.lab.postgres import connect_tls
from core.pki import sha256_fingerprint
from core.rotation.kinds import recover
from tests.rotation_support import certrotate, certs_in, edit_inventory, node_files, served

NOW = pki.utcnow()
EXPIRED_12H_AGO = {"issued_at": NOW - dt.timedelta(days=2), "ca_lifetime": dt.timedelta(hours=36)}


def quick(data):
    data["cluster"]["verify_timeout_seconds"] = 5


def connects(lab, node, certs_dir, user="root") -> bool:
    try:
        with connect_tls(node.address, certs_dir, user, port=node.sql_port, timeout=5) as conn:
            return conn.execute("select current_user").fetchone()[0] == user
    except psycopg.OperationalError:
        return False


# -- the decision (pure) -------------------------------------------------------------------------


def seen(ca_days: float, nodes: dict[str, float | None], clients: dict[str, float | None]) -> recover.Observed:
    def at(days):
        return None if days is None else NOW + dt.timedelta(days=days)

    return recover.Observed(at(ca_days), {n: at(d) for n, d in nodes.items()}, {c: at(d) for c, d in clients.items()})


def test_an_expired_ca_is_replaced_whatever_the_leaves_say():
    recovery = recover.decide(seen(-0.5, {"n1": -0.5, "n2": None}, {"root": -0.5}), NOW)
    assert recovery.kind == recover.NEW_CA and recovery.expired_nodes == ("n1",)
    assert "expired on" in recovery.why and "nothing can connect" in recovery.why


@pytest.mark.parametrize("nodes, clients, kind", [
    ({"n1": -1, "n2": 300}, {"root": 300}, recover.NODES),
    ({"n1": -1, "n2": 300}, {"root": -1}, recover.LEAVES),
    ({"n1": 300, "n2": 300}, {"root": -1, "app": 300}, recover.CLIENTS),
])
def test_expired_leaves_under_a_valid_ca_get_new_leaves_from_it(nodes, clients, kind):
    recovery = recover.decide(seen(3000, nodes, clients), NOW)
    assert recovery.kind == kind
    assert "current CA" in recovery.why


def test_a_working_cluster_is_refused_with_the_commands_that_fit():
    with pytest.raises(BadInput, match=r"not down by expiry.*\(n2 did not answer.*`certrotate start ca`.*start nodes"):
        recover.decide(seen(3000, {"n1": 300, "n2": None}, {"root": 300}), NOW)


# -- on a real cluster ---------------------------------------------------------------------------


@pytest.mark.lab
def test_a_cluster_whose_ca_and_every_leaf_expired_comes_back_in_one_step(lab_factory):
    lab = lab_factory(3, **EXPIRED_12H_AGO)
    edit_inventory(lab, quick)
    export = lab.local_certs_dir
    assert not any(connects(lab, node, export) for node in lab.nodes)  # the outage: every client refused
    check = certrotate(lab, "check")
    assert check.returncode == 2 and "`certrotate start recover`" in check.stdout
    for refused in (("start", "ca"), ("start", "nodes"), ("start", "init")):
        result = certrotate(lab, *refused)
        assert result.returncode == 2 and "certrotate start recover" in result.stderr, refused
        assert "Traceback" not in result.stderr
    old_ca = certs_in(lab.local_certs_dir / "ca.crt")[0]

    started = certrotate(lab, "start", "recover")
    assert started.returncode == 0, started.stderr
    assert "The CA expired on" in started.stdout and "Skipping the usual wait is safe" in started.stdout
    preview = certrotate(lab, "advance", "--dry-run")
    assert preview.returncode == 0 and "check" in preview.stdout and "trusts CA" in preview.stdout
    result = certrotate(lab, "advance", "--yes")
    assert result.returncode == 0, result.stderr + result.stdout

    new_ca = certs_in(lab.local_certs_dir / "ca.crt")
    assert len(new_ca) == 1 and sha256_fingerprint(new_ca[0]) != sha256_fingerprint(old_ca)
    for node in lab.nodes:
        served(lab, node).verify_directly_issued_by(new_ca[0])
        assert (node.certs_dir / "ca.crt").read_bytes() == (lab.local_certs_dir / "ca.crt").read_bytes()
        assert connects(lab, node, lab.local_certs_dir / "export" / "root"), node.name  # the delivered files work
    status = json.loads(certrotate(lab, "status", "--json").stdout)
    assert status["phase"] == "idle" and status["history"][-1]["kind"] == recover.NEW_CA
    assert status["history"][-1]["outcome"] == "done"
    after = certrotate(lab, "check")
    assert after.returncode == 0, after.stdout


@pytest.mark.lab
def test_expired_node_certificates_under_a_valid_ca_get_new_leaves_from_it(lab_factory):
    lab = lab_factory(2, issued_at=NOW - dt.timedelta(days=2), node_lifetime=dt.timedelta(hours=36))
    edit_inventory(lab, quick)
    ca_before = (lab.local_certs_dir / "ca.crt").read_bytes()
    assert not any(connects(lab, node, lab.local_certs_dir) for node in lab.nodes)
    started = certrotate(lab, "start", "recover")
    assert started.returncode == 0 and "node certificates of n1, n2 expired" in started.stdout, started.stderr
    result = certrotate(lab, "advance", "--yes")
    assert result.returncode == 0, result.stderr + result.stdout
    ca = certs_in(lab.local_certs_dir / "ca.crt")[0]
    assert (lab.local_certs_dir / "ca.crt").read_bytes() == ca_before  # the CA stays
    for node in lab.nodes:
        leaf = served(lab, node)
        leaf.verify_directly_issued_by(ca)
        assert leaf.not_valid_after_utc > NOW + dt.timedelta(days=300)
        assert connects(lab, node, lab.local_certs_dir), node.name  # the clients' own, still valid files
    assert json.loads(certrotate(lab, "status", "--json").stdout)["history"][-1]["kind"] == recover.NODES


@pytest.mark.lab
def test_recover_refuses_a_healthy_cluster_and_changes_nothing(lab):
    before = node_files(lab)
    result = certrotate(lab, "start", "recover")
    assert result.returncode == 2
    assert "not down by expiry" in result.stderr and "`certrotate start ca`" in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert json.loads(certrotate(lab, "status", "--json").stdout)["phase"] == "idle"
    assert node_files(lab) == before


@pytest.mark.lab
def test_a_ca_that_expires_before_the_wait_ends_gets_an_acknowledged_shorter_wait(lab_factory):
    lab = lab_factory(2, ca_lifetime=dt.timedelta(days=10))
    edit_inventory(lab, quick)
    refused = certrotate(lab, "start", "ca")
    assert refused.returncode == 2
    assert "sooner than the 30-day wait" in refused.stderr and "--wait-days 8" in refused.stderr
    too_long = certrotate(lab, "start", "ca", "--wait-days", "9")
    assert too_long.returncode == 2 and "0 to 8 days" in too_long.stderr
    started = certrotate(lab, "start", "ca", "--wait-days", "7")
    assert started.returncode == 0 and "shortened from 30 to 7 days" in started.stdout, started.stderr
    trust = certrotate(lab, "advance")
    assert trust.returncode == 0, trust.stderr
    status = json.loads(certrotate(lab, "status", "--json").stdout)
    until = dt.datetime.fromisoformat(status["wait_until"])
    old_ca_end = certs_in(lab.local_certs_dir / "ca.crt")[-1]  # the combined bundle: the new CA, then the old
    assert until < old_ca_end.not_valid_after_utc - dt.timedelta(days=1)
    waiting = certrotate(lab, "advance")
    assert "waits 7 days" in waiting.stdout and "the CA expires on" in waiting.stdout
    rest = certrotate(lab, "advance", "--now", (until + dt.timedelta(hours=1)).isoformat(), "--yes")
    assert rest.returncode == 0, rest.stderr + rest.stdout
    final = certs_in(lab.local_certs_dir / "ca.crt")
    assert len(final) == 1 and final[0].not_valid_after_utc > NOW + dt.timedelta(days=3000)
    for node in lab.nodes:
        served(lab, node).verify_directly_issued_by(final[0])
