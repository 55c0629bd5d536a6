"""Connection strings for CockroachDB's own outbound TLS: a changefeed's Kafka sink.

`CREATE CHANGEFEED ... INTO 'kafka://broker:9093?tls_enabled=true&ca_cert=...'` takes the
sink's CA, client certificate and client key inline, each as the base64 of its PEM file
(what `base64 -w 0 file` prints), URL-quoted because standard base64 has '+', '/' and '='.
The URI therefore holds a private key by design: it is built in memory and returned,
never logged, and errors name files, never their content.
"""

from __future__ import annotations

import base64
from urllib.parse import quote

from core.bundle import parse_certificates
from core.errors import BadInput
from core.keys import load_private_key
from core.preflight import check_key_matches
from core.probes import split_address


def _inline(data: bytes) -> str:
    return quote(base64.b64encode(data).decode("ascii"), safe="")


def changefeed_uri(
    broker: str,
    *,
    ca_pem: bytes,
    cert_pem: bytes,
    key_pem: bytes,
    topic_prefix: str | None = None,
    ca_source: str = "the CA file",
    cert_source: str = "the client certificate",
    key_source: str = "the client key",
) -> str:
    """`kafka://broker?tls_enabled=true&ca_cert=..&client_cert=..&client_key=..[&topic_prefix=..]`.

    The files are checked first (certificates parse, the key is unencrypted and is the
    certificate's), so a URI that CockroachDB would reject at CREATE CHANGEFEED is never printed.
    """
    split_address(broker)  # host:port or [v6]:port, else BadInput
    parse_certificates(ca_pem, ca_source)
    certificate = parse_certificates(cert_pem, cert_source)[0].certificate
    if b"ENCRYPTED" in key_pem:
        raise BadInput(f"{key_source} is encrypted; the Kafka sink needs the key unencrypted.")
    key = load_private_key(key_pem, key_source)
    check_key_matches(certificate, key, cert_source, key_source)
    params = [
        ("tls_enabled", "true"),
        ("ca_cert", _inline(ca_pem)),
        ("client_cert", _inline(cert_pem)),
        ("client_key", _inline(key_pem)),
    ]
    if topic_prefix:
        params.append(("topic_prefix", quote(topic_prefix, safe="")))
    return f"kafka://{broker}?" + "&".join(f"{name}={value}" for name, value in params)
