"""Trust bundles keep their bytes, refuse what does not belong, and say what expired."""

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core import pki
from core.errors import BadInput
from core.pki import bundle

NOW = dt.datetime(2026, 11, 23, tzinfo=dt.timezone.utc)


@pytest.fixture(scope="module")
def cas():
    return [pki.issue_ca(now=NOW, key_type="ecdsa-p256", common_name=f"CA {i}") for i in range(3)]


def test_combine_puts_new_ca_first_and_keeps_old_bytes(cas):
    old_bytes = cas[0].cert_pem.replace(b"\n", b"\r\n")  # a CRLF file written on Windows
    combined = bundle.combine(cas[1].cert_pem, old_bytes)
    assert combined.startswith(cas[1].cert_pem)
    assert combined.endswith(old_bytes)
    assert bundle.parse_bundle(combined, "ca.crt").fingerprints == [cas[1].fingerprint, cas[0].fingerprint]


def test_combine_does_not_duplicate_a_ca_already_present(cas):
    once = bundle.combine(cas[1].cert_pem, cas[0].cert_pem)
    assert bundle.combine(cas[1].cert_pem, once) == once


def test_remove_keeps_the_others_exactly(cas):
    combined = bundle.combine(cas[2].cert_pem, bundle.combine(cas[1].cert_pem, cas[0].cert_pem))
    without = bundle.remove(combined, {cas[1].fingerprint})
    assert without == cas[2].cert_pem + cas[0].cert_pem


def test_removing_the_last_ca_is_refused(cas):
    with pytest.raises(BadInput, match="empty"):
        bundle.remove(cas[0].cert_pem, {cas[0].fingerprint})


def test_a_leaf_in_the_bundle_is_refused(cas):
    leaf = pki.issue_client(cas[0], "root", key_type="ecdsa-p256", now=NOW)
    with pytest.raises(BadInput, match="entry 2 .* is not a CA certificate"):
        bundle.parse_bundle(cas[0].cert_pem + leaf.cert_pem, "ca.crt")


def test_a_private_key_in_the_bundle_is_refused_without_echoing_it(cas):
    with pytest.raises(BadInput) as info:
        bundle.parse_bundle(cas[0].cert_pem + cas[0].key_pem(), "ca.crt")
    assert "PRIVATE KEY" in str(info.value) and "MII" not in str(info.value)


@pytest.mark.parametrize(
    "data",
    [b"", b"garbage", b"-----BEGIN CERTIFICATE-----\nMIIB\n", b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"],
)
def test_malformed_pem_is_refused(data):
    with pytest.raises(BadInput):
        bundle.parse_bundle(data, "ca.crt")


def test_truncated_bundle_is_refused(cas):
    pem = cas[0].cert_pem + cas[1].cert_pem
    with pytest.raises(BadInput, match="truncated"):
        bundle.parse_bundle(pem[:-40], "ca.crt")


def test_expired_entries_are_reported():
    old = pki.issue_ca(now=NOW - dt.timedelta(days=100), lifetime=dt.timedelta(days=10), key_type="ecdsa-p256")
    new = pki.issue_ca(now=NOW, key_type="ecdsa-p256")
    parsed = bundle.parse_bundle(bundle.combine(new.cert_pem, old.cert_pem), "ca.crt")
    assert [e.fingerprint for e in parsed.expired(NOW)] == [old.fingerprint]


@settings(max_examples=30, deadline=None)
@given(order=st.permutations([0, 1, 2]), separators=st.lists(st.sampled_from([b"", b"\n", b"# comment\n"]), min_size=3, max_size=3))
def test_split_then_join_keeps_every_byte(cas, order, separators):
    blocks = [cas[i].cert_pem for i in order]
    data = b"".join(sep + block for sep, block in zip(separators, blocks))
    assert [block for _, block in bundle.split_pem(data, "x")] == blocks
    assert bundle.join_pem(blocks) == b"".join(blocks)
