"""Split node certificates and the client CA without a network: profiles, inventory fields,
preflight of the split leaf set, the leaf plan, `cert create-client-ca` and `start client-ca`."""

import dataclasses
import datetime as dt
import textwrap

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from core import pki
from core.config import state as state_mod
from core.config.inventory import ClientConfig, ClusterConfig
from core.config.workspace import LeafFiles
from core.errors import BadInput
from core.pki import bundle
from core.rotation import engine
from core.rotation.model import ExpectAccepted, ExpectServed, RunCommand, WriteFiles
from core.rotation.node_leaves import NodeLeafSet, check_node_leaf_set
from core.rotation.plans import HostFacts, plan_node_leaf
from tui import view
from tui.cli import main

NOW = dt.datetime(2026, 11, 23, tzinfo=dt.timezone.utc)
FAST = "ecdsa-p256"


@pytest.fixture(scope="module")
def cas():
    return pki.issue_ca(now=NOW, key_type=FAST), pki.issue_ca(now=NOW, key_type=FAST, client_ca=True)


def eku(certificate: x509.Certificate) -> list:
    return list(certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)


# -- profiles ----------------------------------------------------------------------------------


def test_split_node_certificate_has_no_cn_and_only_serves(cas):
    ca, _ = cas
    split = pki.issue_node(ca, ["n1.example.com", "10.0.0.1"], now=NOW, key_type=FAST, profile=pki.SPLIT_NODE_PROFILE)
    assert pki.common_name(split.certificate) is None
    assert eku(split.certificate) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert pki.san_strings(split.certificate) == ["n1.example.com", "10.0.0.1"]
    combined = pki.issue_node(ca, ["n1.example.com"], now=NOW, key_type=FAST, profile=pki.NODE_PROFILES["combined"])
    assert pki.common_name(combined.certificate) == "node"
    assert eku(combined.certificate) == [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]


# -- inventory ---------------------------------------------------------------------------------

INVENTORY = textwrap.dedent("""\
    [cluster]
    name = "prod"
    profile = "{profile}"
    {extra}

    [[nodes]]
    name = "n1"
    ssh_host = "10.0.0.1"
    certs_dir = "/var/lib/cockroach/certs"
    """)


def load(tmp_path, extra: str, profile: str = "postgres"):
    path = tmp_path / "certrotate.toml"
    path.write_text(INVENTORY.format(profile=profile, extra=extra))
    return state_mod.load(path)


def test_defaults_are_the_combined_layout_without_client_ca(tmp_path):
    cluster = load(tmp_path, "").inventory.cluster
    assert cluster.node_cert_layout == "combined" and cluster.client_ca_key is None
    assert not cluster.split_node_certs and not cluster.has_client_ca


def test_split_fields_load_and_survive_a_rewrite(tmp_path):
    state = load(tmp_path, 'node_cert_layout = "split"\nclient_ca_key = "safe/ca-client.key"', profile="cockroach")
    assert state.inventory.cluster.split_node_certs and state.inventory.cluster.client_ca_key == "safe/ca-client.key"
    state_mod.save(state)
    assert state_mod.load(state.path).inventory.cluster == state.inventory.cluster


@pytest.mark.parametrize("extra,profile,needle", [
    ('node_cert_layout = "separate"', "postgres", r"line 4: cluster.node_cert_layout is 'separate'; choose one of combined, split"),
    ("client_ca_key = 7", "postgres", r"line 4: cluster.client_ca_key must be a string"),
    ('client_ca_key = "safe/ca.key"', "postgres", r"line 4: cluster.client_ca_key is the same file as ca_key"),
    ('client_ca_key = "safe/ca-client.key"', "cockroach", r'line 4: cluster.client_ca_key needs node_cert_layout = "split"'),
])
def test_bad_split_fields_name_field_and_line(tmp_path, extra, profile, needle):
    with pytest.raises(BadInput, match=needle):
        load(tmp_path, extra, profile)


# -- preflight of the split leaf set -------------------------------------------------------------


def leaf(issued: pki.Issued) -> LeafFiles:
    return LeafFiles(issued.cert_pem, issued.key_pem(), issued.fingerprint)


def test_preflight_checks_client_node_against_the_client_bundle(cas):
    ca, client_ca = cas
    cluster = ClusterConfig("prod", profile="cockroach", node_cert_layout="split", client_ca_key="safe/ca-client.key")
    server = leaf(pki.issue_node(ca, ["a"], now=NOW, key_type=FAST, profile=pki.SPLIT_NODE_PROFILE))
    good = NodeLeafSet(server, leaf(pki.issue_client(client_ca, "node", now=NOW, key_type=FAST)))
    check_node_leaf_set(good, node_name="n1", cluster=cluster, server_bundle=ca.cert_pem,
                        client_bundle=client_ca.cert_pem, now=NOW)  # node.crt without CN is fine in the split layout
    signed_by_node_ca = NodeLeafSet(server, leaf(pki.issue_client(ca, "node", now=NOW, key_type=FAST)))
    with pytest.raises(BadInput, match="client.node.crt of n1 does not chain"):
        check_node_leaf_set(signed_by_node_ca, node_name="n1", cluster=cluster, server_bundle=ca.cert_pem,
                            client_bundle=client_ca.cert_pem, now=NOW)
    wrong_user = NodeLeafSet(server, leaf(pki.issue_client(client_ca, "root", now=NOW, key_type=FAST)))
    with pytest.raises(BadInput, match="'node' principal"):
        check_node_leaf_set(wrong_user, node_name="n1", cluster=cluster, server_bundle=ca.cert_pem,
                            client_bundle=client_ca.cert_pem, now=NOW)
    combined = ClusterConfig("prod", profile="cockroach")
    with pytest.raises(BadInput, match="'node' principal"):  # combined layout: node.crt must carry CN=node
        check_node_leaf_set(NodeLeafSet(server, None), node_name="n1", cluster=combined, server_bundle=ca.cert_pem,
                            client_bundle=ca.cert_pem, now=NOW)


# -- the leaf plan -------------------------------------------------------------------------------


def test_split_leaf_plan_writes_four_files_in_one_change_then_one_reload(cas):
    ca, client_ca = cas
    server = leaf(pki.issue_node(ca, ["a"], now=NOW, key_type=FAST, profile=pki.SPLIT_NODE_PROFILE))
    client_node = leaf(pki.issue_client(client_ca, "node", now=NOW, key_type=FAST))
    leaves = NodeLeafSet(server, client_node)
    accept = ExpectAccepted("n1", "10.0.0.1:26257", "node", client_node.fingerprint, client_node.cert_pem,
                            client_node.key_pem)
    facts = HostFacts("n1", {}, "ab" * 32)
    actions = plan_node_leaf("n1", "/certs", facts, server.cert_pem, server.key_pem, server.fingerprint, bundle_pem=None,
                             reload="kill -HUP 1", sql_addr="10.0.0.1:26257", backup_id="r.leaf", verified=False,
                             extra_files=leaves.extra_files(), accepted=(accept,))
    assert [type(a) for a in actions] == [WriteFiles, RunCommand, ExpectServed, ExpectAccepted]
    assert [f.path for f in actions[0].files] == ["/certs/node.key", "/certs/node.crt", "/certs/client.node.key",
                                                  "/certs/client.node.crt"]
    assert "BEGIN" not in repr(actions)  # no key material in a plan's repr (journal, logs)
    # A client CA rotation leaves node.crt alone: only client.node.* go up, and the node keeps serving what it served.
    only_client = plan_node_leaf("n1", "/certs", facts, None, None, facts.served_fingerprint, bundle_pem=None,
                                 reload="kill -HUP 1", sql_addr="10.0.0.1:26257", backup_id="r.leaf", verified=False,
                                 extra_files=NodeLeafSet(None, client_node).extra_files(), accepted=(accept,))
    assert [f.path for f in only_client[0].files] == ["/certs/client.node.key", "/certs/client.node.crt"]
    assert only_client[2] == ExpectServed("n1", "10.0.0.1:26257", "ab" * 32)


# -- the kinds -----------------------------------------------------------------------------------


def test_start_client_ca_needs_a_client_ca(tmp_path):
    state = load(tmp_path, "")
    with pytest.raises(BadInput, match="no \\[cluster\\] client_ca_key"):
        engine.start(state, "client-ca")
    state = load(tmp_path, 'client_ca_key = "safe/ca-client.key"')
    with pytest.raises(BadInput, match="certs/ca-client.crt does not exist.*create-client-ca"):
        engine.start(state, "client-ca")
    assert state.rotation == {}


# -- cert create-client-ca -------------------------------------------------------------------------


def test_create_client_ca_overwrite_prepends_and_leaves_ca_crt_alone(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["cert", "create-ca", "--certs-dir=certs", "--ca-key=safe/ca.key", f"--key-type={FAST}"]) == 0
    assert main(["cert", "create-client-ca", "--certs-dir=certs", "--ca-key=safe/ca-client.key", f"--key-type={FAST}"]) == 0
    ca_crt = (tmp_path / "certs/ca.crt").read_bytes()
    old = (tmp_path / "certs/ca-client.crt").read_bytes()
    assert main(["cert", "create-client-ca", "--certs-dir=certs", "--ca-key=safe/ca-client2.key"]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main(["cert", "create-client-ca", "--certs-dir=certs", "--ca-key=safe/ca-client2.key", f"--key-type={FAST}",
                 "--overwrite"]) == 0
    combined = (tmp_path / "certs/ca-client.crt").read_bytes()
    assert combined.endswith(old) and len(bundle.parse_bundle(combined, "ca-client.crt").entries) == 2
    assert (tmp_path / "certs/ca.crt").read_bytes() == ca_crt
    # New client certificates come from the new client CA, first in the bundle.
    assert main(["cert", "create-client", "app", "--certs-dir=certs", "--ca-key=safe/ca-client2.key"]) == 0
    first = bundle.parse_bundle(combined, "ca-client.crt").certificates[0]
    x509.load_pem_x509_certificate((tmp_path / "certs/client.app.crt").read_bytes()).verify_directly_issued_by(first)


def test_the_home_screen_words_a_client_ca_rotation_in_its_own_terms(tmp_path):
    state = load(tmp_path, 'client_ca_key = "safe/ca-client.key"\nnode_cert_layout = "split"')
    state.inventory = dataclasses.replace(state.inventory, clients=(ClientConfig("root"),))  # delivered by hand
    assert view.trust_layout(state.inventory.cluster) == ["split node certs (node.crt + client.node.crt)",
                                                          "client CA in ca-client.crt"]
    assert view.trust_layout(load(tmp_path, "").inventory.cluster) == []
    state.rotation = {"id": "r1", "kind": "client-ca", "phase": "trust", "started": NOW}
    assert "ca-client.crt" in view.next_step(state, NOW).reason
    until = NOW + dt.timedelta(days=30)
    state.rotation.update(phase="wait", wait_until=until)
    assert view.next_step(state, NOW).kind == "schedule"
    after = view.next_step(state, until)  # the exported client got nothing in the trust step: nothing to confirm
    assert after.kind == "run" and "new client CA" in after.reason
    assert [s.status for s in view.timeline(state)] == ["done", "current", "pending", "pending"]
    state.rotation.update(phase="retire")
    assert view.next_step(state, until).kind == "confirm"  # root's new certificate still needs its confirmation
