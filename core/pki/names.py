"""Whether a certificate covers a host name: the two rules certrotate checks against, side by side.

Who connects decides the rule, and the two differ on purpose:

- `covers_for_node`: the clients of a node's SQL port and the nodes among themselves.
  CockroachDB and its Go clients verify with Go's crypto/tls (`x509.VerifyHostname`):
  an address matches IP SANs only, a name matches a DNS SAN exactly or through a `*`
  that is the whole left-most label, case and a trailing dot ignored, and the CN is not
  looked at (Go stopped at 1.15). `*.org` covers `db.org`: Go does not know public
  suffixes, so neither do we. libpq's verify-full is looser (it still reads the CN when
  there is no SAN, and compares an address against DNS SANs as text); checking against
  Go's rule means a certificate we call good is good for every client.
- `covers_for_browser`: the DB Console. Browsers apply the CA/Browser Forum rules: the
  same IP-SAN-for-an-address and left-most-label wildcard, the CN ignored, and on top a
  wildcard never stands for a label just below the top (`*.org` covers nothing), because
  such a certificate would cover a whole public suffix. A bring-your-own UI certificate
  from a public CA is judged as the browser will judge it.

Both take the certificate itself, so a DNS SAN that happens to spell an address is never
mistaken for an IP SAN.
"""

from __future__ import annotations

import ipaddress

from cryptography import x509


def _sans(certificate: x509.Certificate) -> tuple[list[str], list[ipaddress.IPv4Address | ipaddress.IPv6Address]]:
    try:
        ext = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return [], []
    return ext.get_values_for_type(x509.DNSName), ext.get_values_for_type(x509.IPAddress)


def _address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The IP address `host` spells ("[::1]" included), or None for a name."""
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def _labels(name: str) -> list[str]:
    return name.rstrip(".").lower().split(".")


def _name_matches(host: str, pattern: str, *, min_wildcard_labels: int) -> bool:
    """`pattern` (a DNS SAN) against `host`: exactly, or `*` standing for exactly the left-most label."""
    wanted, labels = _labels(host), _labels(pattern)
    if not host.strip(".") or not pattern.strip(".") or len(labels) != len(wanted):
        return False
    if labels == wanted:
        return True
    return labels[0] == "*" and labels[1:] == wanted[1:] and len(labels) >= min_wildcard_labels


def _covers(host: str, certificate: x509.Certificate, *, min_wildcard_labels: int) -> bool:
    names, addresses = _sans(certificate)
    address = _address(host)
    if address is not None:
        return address in addresses
    return any(_name_matches(host, name, min_wildcard_labels=min_wildcard_labels) for name in names)


def covers_for_node(host: str, certificate: x509.Certificate) -> bool:
    """Would CockroachDB or a Go client (crypto/tls) accept `certificate` for `host`? See the module."""
    return _covers(host, certificate, min_wildcard_labels=2)


def covers_for_browser(host: str, certificate: x509.Certificate) -> bool:
    """Would a browser accept `certificate` for `host`? As covers_for_node, but `*.tld` covers nothing."""
    return _covers(host, certificate, min_wildcard_labels=3)
