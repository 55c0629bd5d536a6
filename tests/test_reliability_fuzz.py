"""Reliability row 8: a time-bounded coverage-guided fuzz (atheris/libFuzzer) of the two parsers
that read operator-supplied bytes: core.config.state.parse_state and core.pki.bundle.parse_bundle.

Any input may only give a value or a BadInput (tests/fuzz_state_targets.py). Each target
runs ~5 s in a subprocess, seeded with a real state file and a real bundle.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from core import pki
from tests.test_reliability_state import written_state

pytestmark = pytest.mark.reliability

TARGETS = Path(__file__).with_name("fuzz_state_targets.py")
SECONDS = 5


def seed_corpus(tmp_path: Path, target: str) -> Path:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    if target == "state":
        (corpus / "state").write_bytes(written_state(tmp_path / "certrotate.toml"))
    else:
        cas = [pki.issue_ca(key_type="ecdsa-p256", common_name=f"fuzz CA {i}") for i in range(2)]
        (corpus / "bundle").write_bytes(cas[0].cert_pem + b"\n" + cas[1].cert_pem)
    return corpus


@pytest.mark.parametrize("target", ["state", "bundle"])
def test_parser_raises_only_bad_input_for_any_bytes(tmp_path, target):
    pytest.importorskip("atheris")
    corpus = seed_corpus(tmp_path, target)
    result = subprocess.run(
        [sys.executable, str(TARGETS), target, str(corpus), f"-max_total_time={SECONDS}",
         "-timeout=10", "-rss_limit_mb=2048", f"-artifact_prefix={tmp_path}/", "-print_final_stats=1"],
        capture_output=True, text=True, timeout=SECONDS + 60, cwd=Path(__file__).parent.parent,
    )
    stats = [line for line in result.stderr.splitlines() if line.startswith("stat::number_of_executed_units")]
    print(target, stats)
    assert result.returncode == 0, result.stderr[-4000:]
    assert stats and int(stats[0].split(":")[-1]) > 100


def _pem(der: bytes) -> bytes:
    import base64
    body = base64.encodebytes(der).replace(b"\n", b"")
    lines = [body[i:i + 64] for i in range(0, len(body), 64)]
    return b"-----BEGIN CERTIFICATE-----\n" + b"\n".join(lines) + b"\n-----END CERTIFICATE-----\n"


@pytest.mark.parametrize("good,bad", [
    (b"\x01\x01\xff", b"\x01\x01\x05"),            # BasicConstraints ca = non-DER boolean (ValueError, lazily)
    (b"\x55\x04\x0a\x0c", b"\x55\x04\x0a\x0f"),    # O= with an unknown string tag (KeyError, lazily)
])
def test_certificate_with_a_damaged_field_is_one_sentence_not_a_traceback(good, bad):
    """Found by the fuzz above: cryptography parses these fields on first use, not on load."""
    from cryptography.hazmat.primitives.serialization import Encoding

    from core.errors import BadInput
    from core.pki import bundle

    der = pki.issue_ca(key_type="ecdsa-p256", common_name="damaged").certificate.public_bytes(Encoding.DER)
    assert der.count(good) >= 1
    with pytest.raises(BadInput, match="entry 1 is not a parsable certificate"):
        bundle.parse_bundle(_pem(der.replace(good, bad, 1)), "ca.crt")
