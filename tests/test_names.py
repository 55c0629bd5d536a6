"""Which host names a certificate covers: the node (Go crypto/tls) rule and the browser rule side by side."""

from __future__ import annotations

import datetime as dt
import ipaddress

import pytest
from cryptography import x509

from core import pki
from core.pki.names import covers_for_browser, covers_for_node

KEY = pki.generate_private_key("ecdsa-p256")


def cert(*sans: x509.GeneralName, common_name: str | None = "node") -> x509.Certificate:
    return pki.build_certificate(pki.NODE_PROFILE, common_name=common_name, key=KEY, lifetime=dt.timedelta(days=1),
                                 now=pki.utcnow(), sans=list(sans) or None)


def dns(name: str) -> x509.DNSName:
    return x509.DNSName(name)


def ip(address: str) -> x509.IPAddress:
    return x509.IPAddress(ipaddress.ip_address(address))


BOTH = pytest.mark.parametrize("covers", [covers_for_node, covers_for_browser], ids=["node", "browser"])


@BOTH
def test_an_address_is_covered_by_its_ip_san_only(covers):
    assert covers("10.0.0.1", cert(ip("10.0.0.1")))
    assert covers("[::1]", cert(ip("::1"))) and covers("::1", cert(ip("::1")))
    assert not covers("10.0.0.2", cert(ip("10.0.0.1")))
    # A DNS SAN that spells the address is not an IP SAN: Go and browsers refuse it.
    assert not covers("10.0.0.1", cert(dns("10.0.0.1")))


@BOTH
def test_a_name_matches_exactly_ignoring_case_and_a_trailing_dot(covers):
    leaf = cert(dns("db.example.org"))
    assert covers("db.example.org", leaf) and covers("DB.Example.org.", leaf)
    assert not covers("db2.example.org", leaf) and not covers("example.org", leaf)
    assert covers("db.example.org", cert(dns("db.example.org.")))


@BOTH
def test_a_wildcard_stands_for_exactly_the_left_most_label(covers):
    leaf = cert(dns("*.db.example.org"))
    assert covers("n1.db.example.org", leaf)
    assert not covers("a.n1.db.example.org", leaf)
    assert not covers("db.example.org", leaf)
    assert not covers("n1.db.example.org", cert(dns("n1.*.example.org")))


@BOTH
def test_the_common_name_is_never_read(covers):
    assert not covers("db.example.org", cert(common_name="db.example.org"))
    assert not covers("db.example.org", cert(ip("10.0.0.1"), common_name="db.example.org"))


def test_a_wildcard_just_below_the_top_covers_a_node_but_not_for_a_browser():
    leaf = cert(dns("*.internal"))
    assert covers_for_node("db.internal", leaf)
    assert not covers_for_browser("db.internal", leaf)
