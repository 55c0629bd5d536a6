"""`certrotate cloud changefeed-uri`: a kafka:// sink URI with the TLS files inline."""

from __future__ import annotations

import base64
import re
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from core import pki
from core.files import write_private, write_public
from tui.cli import main

BROKER = "127.0.0.1:9093"


@pytest.fixture
def sink_files(tmp_path: Path) -> dict[str, Path]:
    ca = pki.issue_ca(common_name="Kafka CA", key_type="ecdsa-p256")
    client = pki.issue_client(ca, "changefeed", key_type="ecdsa-p256")
    paths = {"ca": tmp_path / "kafka-ca.crt", "cert": tmp_path / "client.crt", "key": tmp_path / "client.key"}
    write_public(paths["ca"], ca.cert_pem, overwrite=False)
    write_public(paths["cert"], client.cert_pem, overwrite=False)
    write_private(paths["key"], client.key_pem(), overwrite=False)
    return paths


def _run(capsys, files: dict[str, Path], *extra: str) -> tuple[int, str, str]:
    code = main(["cloud", "changefeed-uri", "--ca", str(files["ca"]), "--cert", str(files["cert"]),
                 "--key", str(files["key"]), *extra])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_uri_carries_each_file_as_base64_of_its_pem(sink_files, capsys):
    code, out, _ = _run(capsys, sink_files, "--broker", BROKER)
    assert code == 0
    query = parse_qs(urlsplit(out.strip()).query)
    assert query["tls_enabled"] == ["true"]
    for param, name in (("ca_cert", "ca"), ("client_cert", "cert"), ("client_key", "key")):
        assert base64.b64decode(query[param][0], validate=True) == sink_files[name].read_bytes()


def test_uri_is_one_kafka_line_with_base64_url_quoted(sink_files, capsys):
    code, out, _ = _run(capsys, sink_files, "--broker", BROKER, "--topic-prefix", "prod.")
    uri = out.strip()
    assert code == 0 and out.count("\n") == 1
    assert uri.startswith(f"kafka://{BROKER}?tls_enabled=true&ca_cert=")
    assert uri.endswith("&topic_prefix=prod.")
    for value in re.findall(r"(?:ca_cert|client_cert|client_key)=([^&]*)", uri):
        assert re.fullmatch(r"[A-Za-z0-9%]+", value), "'+', '/' and '=' must be percent-encoded"


def test_private_key_warning_goes_to_stderr_without_the_key(sink_files, capsys):
    _, out, err = _run(capsys, sink_files, "--broker", BROKER)
    assert f"warning: this URI contains the private key {sink_files['key']}" in err
    assert "PRIVATE KEY" not in err and "client_key=" not in err
    assert "warning" not in out


def test_key_of_another_certificate_is_refused_without_printing_it(sink_files, tmp_path, capsys):
    stranger = tmp_path / "other.key"
    write_private(stranger, pki.issue_client(pki.issue_ca(), "x").key_pem(), overwrite=False)
    code, out, err = _run(capsys, {**sink_files, "key": stranger}, "--broker", BROKER)
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1 and f"{stranger} does not match {sink_files['cert']}" in err
    assert "PRIVATE KEY" not in err


def test_broker_without_a_port_is_refused(sink_files, capsys):
    code, out, err = _run(capsys, sink_files, "--broker", "kafka.example.test")
    assert code == 2 and out == ""
    assert "is not a host:port address" in err
