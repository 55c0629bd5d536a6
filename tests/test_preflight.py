"""Preflight refuses, before any upload, every file a node would choke on."""

import datetime as dt

import pytest

from core import pki
from core.errors import BadInput
from core.pki import checks

NOW = dt.datetime(2026, 11, 23, tzinfo=dt.timezone.utc)


@pytest.fixture(scope="module")
def ca():
    return pki.issue_ca(now=NOW, key_type="ecdsa-p256")


def test_matching_pair_passes_and_mismatch_is_named(ca):
    node = pki.issue_node(ca, ["localhost"], now=NOW, key_type="ecdsa-p256")
    other = pki.issue_node(ca, ["localhost"], now=NOW, key_type="ecdsa-p256")
    checks.check_key_matches(node.certificate, node.key, "node.crt", "node.key")
    with pytest.raises(BadInput, match="node.key does not match node.crt"):
        checks.check_key_matches(node.certificate, other.key, "node.crt", "node.key")


def test_chain_now_and_later(ca):
    node = pki.issue_node(ca, ["localhost"], now=NOW, key_type="ecdsa-p256", lifetime=dt.timedelta(days=20))
    checks.check_chain(node.certificate, [ca.certificate], "node.crt", at=[NOW], client=False)
    with pytest.raises(BadInput, match="on 2027-01-22"):
        checks.check_chain(node.certificate, [ca.certificate], "node.crt", at=[NOW, NOW + dt.timedelta(days=60)], client=False)


def test_chain_to_a_bundle_that_lacks_the_issuer(ca):
    other = pki.issue_ca(now=NOW, key_type="ecdsa-p256")
    client = pki.issue_client(ca, "root", now=NOW, key_type="ecdsa-p256")
    with pytest.raises(BadInput, match="no CA in the bundle issued it"):
        checks.check_chain(client.certificate, [other.certificate], "client.root.crt", at=[NOW], client=True)
    checks.check_chain(client.certificate, [other.certificate, ca.certificate], "client.root.crt", at=[NOW], client=True)


def test_client_certificate_cannot_serve(ca):
    client = pki.issue_client(ca, "root", now=NOW, key_type="ecdsa-p256")
    with pytest.raises(BadInput, match="serverAuth"):
        checks.check_chain(client.certificate, [ca.certificate], "node.crt", at=[NOW], client=False)


def test_node_principal(ca):
    checks.check_node_principal(pki.issue_node(ca, ["a"], now=NOW, key_type="ecdsa-p256").certificate, "node.crt")
    split = pki.issue_node(ca, ["a"], now=NOW, key_type="ecdsa-p256", with_node_principal=False)
    with pytest.raises(BadInput, match="'node' principal"):
        checks.check_node_principal(split.certificate, "node.crt")


def test_expired_and_not_yet_valid(ca):
    leaf = pki.issue_client(ca, "root", now=NOW, key_type="ecdsa-p256", lifetime=dt.timedelta(days=1))
    with pytest.raises(BadInput, match="expired on"):
        checks.check_not_expired(leaf.certificate, "client.root.crt", NOW + dt.timedelta(days=2))
    with pytest.raises(BadInput, match="not valid before"):
        checks.check_not_expired(leaf.certificate, "client.root.crt", NOW - dt.timedelta(days=2))


def test_leaf_files_are_checked_as_the_node_would(ca):
    node = pki.issue_node(ca, ["a"], now=NOW, key_type="ecdsa-p256")
    other = pki.issue_ca(now=NOW, key_type="ecdsa-p256")
    later = NOW + dt.timedelta(hours=1)
    checks.check_leaf_files(node.cert_pem, node.key_pem(), ca.cert_pem, "node.crt", now=later, client=False, node_principal=True)
    with pytest.raises(BadInput, match="not a key pair"):
        checks.check_leaf_files(node.cert_pem, other.key_pem(), ca.cert_pem, "node.crt", now=later, client=False)
    with pytest.raises(BadInput, match="no CA in the bundle issued it"):
        checks.check_leaf_files(node.cert_pem, node.key_pem(), other.cert_pem, "node.crt", now=later, client=False)
    with pytest.raises(BadInput, match="not a CA certificate"):
        checks.check_leaf_files(node.cert_pem, node.key_pem(), node.cert_pem, "node.crt", now=later, client=False)
