"""Region by region: each phase finishes a region (uploaded, reloaded, verified) before the next.

The lab's four nodes are put in two regions interleaved in the inventory (n1 east, n2 west,
n3 east, n4 west), so the order cannot come from inventory order alone.
"""

import datetime as dt
import json
import tomllib

import pytest

from core.config.inventory import NodeConfig
from core.rotation import regions
from tests.rotation_support import (
    FUTURE,
    LiveClient,
    certrotate,
    edit_inventory,
    lab_with_restarting_client,
    node_files,
    rotate_ca_to_idle,
    set_node_reload,
)

EAST, WEST = ("n1", "n3"), ("n2", "n4")
REGION_OF = {**{name: "east" for name in EAST}, **{name: "west" for name in WEST}}


def put_in_regions(data):
    for node in data["nodes"]:
        node["region"] = REGION_OF[node["name"]]
    data["cluster"]["verify_timeout_seconds"] = 5


def journal(lab) -> list[dict]:
    return tomllib.loads(lab.state_path.read_text())["journal"]


def last_verified(lab, step: str, hosts) -> dt.datetime:
    """When the last of `hosts` was recorded verified in `step` (recorded after the probe passed)."""
    times = [e["at"] for e in journal(lab) if e["action"] == f"{step}: verify" and e.get("host") in hosts]
    assert {e.get("host") for e in journal(lab) if e["action"] == f"{step}: verify"} >= set(hosts)
    return max(times)


def first_written(lab, file_name: str, hosts) -> dt.datetime:
    """When the first of `hosts` got `file_name` written, as the node's own file system says."""
    stamps = [(lab.node(name).certs_dir / file_name).stat().st_mtime for name in hosts]
    return dt.datetime.fromtimestamp(min(stamps), dt.timezone.utc)


def progress_lines(stdout: str, step: str) -> list[str]:
    return [line for line in stdout.splitlines() if line.startswith("region ") and f" {step} " in line]


@pytest.mark.lab
def test_each_phase_verifies_every_node_of_a_region_before_writing_to_the_next(lab_factory):
    lab = lab_factory(4)
    edit_inventory(lab, put_in_regions)
    assert certrotate(lab, "start", "ca").returncode == 0
    dry = certrotate(lab, "advance", "--dry-run")  # verifies nothing, so announces no region as verified
    assert dry.returncode == 0 and progress_lines(dry.stdout, "trust") == []

    trust = certrotate(lab, "advance")
    assert trust.returncode == 0, trust.stderr
    assert last_verified(lab, "trust", EAST) < first_written(lab, "ca.crt", WEST)
    lines = progress_lines(trust.stdout, "trust")
    assert [line.split()[1] + " " + line.split()[3] for line in lines] == [
        "east ..", "east ok", "west ..", "west ok"]
    assert "every node verified (n1, n3)" in lines[1]

    rest = certrotate(lab, "advance", "--now", FUTURE, "--yes")
    assert rest.returncode == 0, rest.stderr + rest.stdout
    assert "rotation finished" in rest.stdout
    assert last_verified(lab, "leaf", EAST) < first_written(lab, "node.crt", WEST)
    assert last_verified(lab, "retire", EAST) < first_written(lab, "ca.crt", WEST)
    # the canary n1 opens the leaf rollout; its region follows before any west node
    leaf_nodes = [e["host"] for e in journal(lab) if e["action"] == "leaf: verify" and e.get("host", "").startswith("n")]
    assert leaf_nodes[:2] == ["n1", "n3"] and set(leaf_nodes[2:]) == set(WEST)
    for step in ("leaf", "retire"):
        assert [line.split()[1] for line in progress_lines(rest.stdout, step)] == ["east", "east", "west", "west"]


@pytest.mark.lab
def test_a_failing_node_stops_the_rollout_in_its_region_and_leaves_the_next_untouched(lab_factory):
    lab = lab_factory(4)
    edit_inventory(lab, put_in_regions)
    assert certrotate(lab, "start", "ca").returncode == 0
    set_node_reload(lab, "n3", "false")  # n3 (east) never picks up the new bundle
    before = node_files(lab)

    result = certrotate(lab, "advance")
    assert result.returncode == 1
    sentence = result.stderr.strip()
    assert len(sentence.splitlines()) == 1 and "Traceback" not in sentence
    assert sentence.startswith("certrotate: n3") or "n3" in sentence.split(";")[0]
    assert "Region east stopped the trust rollout; region west was not touched." in sentence
    after = node_files(lab)
    for name in WEST:
        assert after[name] == before[name], f"{name} (west) was touched"
    assert after["n1"] != before["n1"]  # east went ahead in parallel
    status = json.loads(certrotate(lab, "status", "--json").stdout)
    assert status["phase"] == "trust"
    assert status["last_error"] == sentence.removeprefix("certrotate: ")  # what the wizard shows
    assert all("trust" not in status["nodes"].get(name, {}) for name in WEST)

    # the cause fixed, the same command finishes the trust rollout everywhere
    set_node_reload(lab, "n3", lab.node("n3").reload_command)
    again = certrotate(lab, "advance")
    assert again.returncode == 0, again.stderr
    assert json.loads(certrotate(lab, "status", "--json").stdout)["phase"] == "wait"

    # leaf: n3 keeps serving its old certificate, is restored, and west stays as it was
    set_node_reload(lab, "n3", "true")
    before_leaf = node_files(lab)
    leaf = certrotate(lab, "advance", "--now", FUTURE, "--yes")
    assert leaf.returncode == 1
    assert "n3" in leaf.stderr and "Region east stopped the leaf rollout; region west was not touched." in leaf.stderr
    after_leaf = node_files(lab)
    for name in WEST:
        assert after_leaf[name] == before_leaf[name], f"{name} (west) was touched in leaf"
    assert "Region east stopped the leaf rollout" in json.loads(certrotate(lab, "status", "--json").stdout)["last_error"]

    # retire: n3 reloads while its ca.crt holds two CAs, not once it holds one, so it finishes
    # its leaf step and then keeps trusting the old CA; west keeps the combined bundle
    n3 = lab.node("n3")
    set_node_reload(lab, "n3", f"[ $(grep -c BEGIN {n3.certs_dir}/ca.crt) -eq 1 ] || {n3.reload_command}")
    retire = certrotate(lab, "advance", "--now", FUTURE, "--yes")
    assert retire.returncode == 1, retire.stdout
    assert json.loads(certrotate(lab, "status", "--json").stdout)["phase"] == "retire"
    assert "n3 did not stop trusting CA" in retire.stderr
    assert "Region east stopped the retire rollout; region west was not touched." in retire.stderr
    for name in WEST:  # still the combined bundle of the trust step: the leaf step writes no ca.crt
        assert node_files(lab)[name]["ca.crt"] == after_leaf[name]["ca.crt"]


@pytest.mark.lab
def test_full_rotation_by_region_with_zero_failed_connections(lab_factory):
    lab, marker = lab_with_restarting_client(lab_factory, 4)
    edit_inventory(lab, put_in_regions)
    client_dir = lab.client_host("app").certs_dir
    with LiveClient(lab, client_dir, "app", marker) as client:
        rotate_ca_to_idle(lab)
    assert client.failures == []
    assert client.ok > 40
    status = json.loads(certrotate(lab, "status", "--json").stdout)
    assert status["phase"] == "idle" and status["history"][-1]["outcome"] == "done"


# -- the pure part ------------------------------------------------------------------------


def node(name: str, region: str | None) -> NodeConfig:
    return NodeConfig(name=name, ssh_host="h", certs_dir="/c", region=region)


def test_regions_group_in_order_of_first_appearance():
    nodes = [node("a", "west"), node("b", "east"), node("c", "west"), node("d", None), node("e", "east")]
    groups = regions.by_region(nodes)
    assert [(name, [n.name for n in group]) for name, group in groups] == [
        ("west", ["a", "c"]), ("east", ["b", "e"]), (None, ["d"])]


def test_without_regions_every_node_is_one_group():
    nodes = [node("a", None), node("b", None)]
    assert [[n.name for n in group] for _, group in regions.by_region(nodes)] == [["a", "b"]]


def test_announce_reports_a_region_done_only_after_its_last_node():
    events = []
    nodes = [node("a", "east"), node("b", "east"), node("c", "west")]
    seen = []
    for n in regions.announce(nodes, "leaf", events.append):
        seen.append((n.name, [(e.host, e.status) for e in events]))
        events.clear()
    assert seen == [("a", [("region east", "running")]), ("b", []),
                    ("c", [("region east", "ok"), ("region west", "running")])]
    assert [(e.host, e.status) for e in events] == [("region west", "ok")]


def test_stopped_sentence_names_the_region_and_what_was_left():
    groups = regions.by_region([node("a", "east"), node("b", "west"), node("c", "north")])
    text = regions.stopped_sentence(Exception("a: did not trust CA 1234"), "east", "trust", groups[1:])
    assert text == "a: did not trust CA 1234. Region east stopped the trust rollout; regions west, north were not touched."
    last = regions.stopped_sentence(Exception("c failed."), "north", "retire", [])
    assert last == "c failed. Region north stopped the retire rollout; it was the last region."
